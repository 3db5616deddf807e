"""Entry points of the function; they wire events → handlers → clients and map errors to statuses.

``webhook`` (HTTP, internet-facing): ``functions-framework --target=webhook``.
``event`` (queue deliveries: CloudEvents, Pub/Sub push, FunctionGraph triggers on ``/invoke``):
``functions-framework --target=event``. Both are plain HTTP functions, so a malformed delivery
gets our JSON error, never a page that echoes the request; both answer ``GET /healthz`` and
``/readyz`` (health.py). Nothing else lives here but the wiring, the outcome log lines
(logs.EventLog), the one table from failures to HTTP statuses, and the shape of the answers.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from typing import Any
from urllib.parse import quote, urlsplit

import flask
import functions_framework

import events
import health
import logs
from clients import retry
from clients.callback import CallbackSender
from clients.smn import SmnClient
from clients.taurusdb import TaurusDBClient
from config import Settings, load_settings
from errors import (
    InvalidEventError,
    PayloadTooLargeError,
    PredeployError,
)
from events.base import Note, Record, check_batch
from events.senders import redelivers_every_failure
from handlers import polling, records
from handlers import status as handlers_status
from handlers.pre_deploy import BackupOutcome, DryRunOutcome, Services
from health import Answer
from models import Trigger

__all__ = ["event", "prefetch", "webhook"]

_lock = threading.RLock()
_settings: Settings | None = None
_services: Services | None = None
_smn: SmnClient | None = None
_smn_lock = threading.Lock()
_redact = logs.Redactor(())  # the configured secrets, once the settings are loaded

logs.configure()  # LOG_LEVEL from the environment until the settings are loaded
_log = logging.getLogger("predeploy.prefetch")
_PREFETCH_FAILED = "prefetch failed (%s); the first event fetches on demand"


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    """Pipelines' webhooks: a signed pre-deploy event in, ``202 {job_id, backup}`` out."""
    return _respond(request, events.WEBHOOK, "webhook")


@functions_framework.http
def event(request: flask.Request) -> flask.Response:
    """Queue deliveries: ``{"results": [...]}``, non-2xx only when a retry can help."""
    return _respond(request, events.EVENT, "event")


def _respond(request: flask.Request, entry: events.Entry, name: str) -> flask.Response:
    if request.method in ("GET", "HEAD"):
        probe = health.probe(request.path, _get_settings)
        if probe is not None:
            return _response(probe)
    with logs.EventLog(dict(request.headers.items()), entry_point=name) as event_log:
        answer = _answer(request, entry, event_log)
    return _response(answer)


def _answer(request: flask.Request, entry: events.Entry, event_log: logs.EventLog) -> Answer:
    """Serve one request; every failure becomes its status and one outcome line."""
    try:
        return _serve(request, entry, event_log)
    except PredeployError as exc:
        status, body, headers = _error(exc)
        event_log.failed(body["error"], status, exc.message, error_code=body.get("error_code"))
        lowered = {name.lower(): value for name, value in request.headers.items()}
        if entry.queue and not records.curable_by_retry(exc) and redelivers_every_failure(lowered):
            # Pub/Sub push redelivers a 4xx until the message expires: acknowledge, logged above.
            failed = {"record": 0, "outcome": "failed", "http_status": status, "retry": False}
            return 200, {"results": [failed | body]}, {}
        return status, body, headers
    except Exception as exc:  # a bug: the log line names the exception, the caller learns no more
        name = type(exc).__name__
        event_log.failed("internal_error", 500, f"unexpected {name}", exception=name)
        message = "unexpected error; the function's log has the details"
        return 500, {"error": "internal_error", "message": message}, {}


def _response(answer: Answer) -> flask.Response:
    status, body, headers = answer
    payload = _redacted(json.dumps(body))
    # No Connection header here: whether a connection stays open is the server's call (a
    # hop-by-hop header from the app is an error under waitress, ignored by gunicorn). Under
    # server.py (the image, the zip) the server reads the whole body, at most MAX_BODY_BYTES,
    # before the app runs and answers a larger one itself, with "Connection: close".
    results = body.get("results") or [{}]
    if status == 413 or results[0].get("http_status") == 413:  # also when acknowledged
        # functions-framework reads whatever is left of the request after a response that is
        # not streamed; for a body over the limit that would undo the limit. Streamed, it
        # leaves the rest unread, and gunicorn (functions-framework's own server, for local
        # use) drains it within bounds or closes the connection.
        return flask.Response(
            iter([payload]), status=status, headers=headers, mimetype="application/json"
        )
    return flask.Response(payload, status=status, headers=headers, mimetype="application/json")


def _serve(request: flask.Request, entry: events.Entry, event_log: logs.EventLog) -> Answer:
    if entry.queue and request.path.rstrip("/") == "/init":
        _get_services()  # FunctionGraph's initializer: a broken setting shows here
        return 200, {"status": "ready"}, {}
    if request.method == "GET" and not entry.queue:
        return _serve_status(request)
    if request.method != "POST":
        allow = "POST" if entry.queue else "GET, POST"
        return 405, {"error": "method_not_allowed", "message": "use POST"}, {"Allow": allow}
    settings = _get_settings()
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    try:
        body = request.stream.read(limit + 1)
    except Exception:  # the server's own errors: malformed chunks, an aborted upload
        raise InvalidEventError(
            "the body could not be read (malformed chunked encoding or an interrupted upload)"
        ) from None
    if len(body) > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    headers = {name.lower(): value for name, value in request.headers.items()}

    envelope = entry.envelope(headers, body)
    if envelope is None:
        return _deliver(entry, headers, body, settings, event_log)
    try:  # a wrapped HTTP request (FunctionGraph APIG): served like webhook, answered wrapped
        inner_headers, inner_body = envelope.open(headers, body)
        reply = _deliver(events.WEBHOOK, inner_headers, inner_body, settings, event_log)
    except PredeployError as exc:
        reply = _error(exc)
        event_log.failed(reply[1]["error"], reply[0], exc.message)
    return envelope.seal(*reply)


def _deliver(
    entry: events.Entry,
    headers: dict[str, str],
    body: bytes,
    settings: Settings,
    event_log: logs.EventLog,
) -> Answer:
    source = entry.detect(headers, body)
    event_log.note(source=source.NAME)
    delivery = events.receive(
        entry, headers, body, settings, source, certificates=lambda url: _get_smn().certificate(url)
    )
    check_batch(delivery.records, settings)
    outcomes = records.handle_delivery(delivery.records, _get_services(), queue=entry.queue)
    if entry.queue or delivery.batch or len(outcomes) != 1:
        return _results(delivery.records, outcomes, event_log, queue=entry.queue)
    outcome = outcomes[0]
    record = delivery.records[0]
    if isinstance(record, Trigger):
        event_log.note(trigger_id=record.trigger_id, instance_id=record.instance_id)
    if isinstance(outcome, PredeployError):
        raise outcome
    if isinstance(outcome, Note):
        event_log.handled(outcome.status, 200)
        return 200, _noted(outcome), {}
    if isinstance(outcome, DryRunOutcome):
        return _dry_run(outcome, event_log)
    answer = _outcome(outcome)
    _log_outcome(event_log, outcome, answer[0])
    return answer


def _results(
    sent: tuple[Record, ...],
    outcomes: list[records.RecordOutcome],
    event_log: logs.EventLog,
    *,
    queue: bool,
) -> Answer:
    """Every record's outcome, and one status for the whole delivery.

    A queue redelivers whatever is not acknowledged: non-2xx (the first curable failure's
    status) only when a redelivery can succeed. A webhook caller (a pipeline) may look at the
    status alone: any record that did not end well makes it non-2xx (the first such record's
    status), so no deploy goes ahead with an instance left without its backup; a repeated
    delivery then finds the backups that were made and makes only the missing ones.
    """
    results: list[dict[str, Any]] = []
    status, waits = 200, []
    codes: list[int] = []
    polled: list[polling.PollStatus] = []  # the backups' statuses; a failed record is FAILED
    for index, (record, outcome) in enumerate(zip(sent, outcomes, strict=True)):
        if isinstance(outcome, DryRunOutcome):
            code, body, _ = _dry_run(outcome, event_log)
            results.append({"record": index, "outcome": "dry_run", "http_status": code} | body)
        elif isinstance(outcome, BackupOutcome):
            code, body, _ = _outcome(outcome)
            _log_outcome(event_log, outcome, code)
            kind = "started" if outcome.created else "exists"
            results.append({"record": index, "outcome": kind, "http_status": code} | body)
            polled.append(body["status"])
        elif isinstance(outcome, Note):
            event_log.handled(outcome.status, 200)
            results.append({"record": index, **_noted(outcome)})
        else:
            code, body, headers = _error(outcome)
            if isinstance(record, Trigger):  # which instance of the event failed
                body.update(instance_id=record.instance_id, trigger_id=record.trigger_id)
                event_log.note(trigger_id=record.trigger_id, instance_id=record.instance_id)
            curable = records.curable_by_retry(outcome)
            event_log.failed(body["error"], code, outcome.message, record=index, retry=curable)
            results.append(
                {"record": index, "outcome": "failed", "http_status": code, "retry": curable} | body
            )
            if isinstance(record, Trigger):
                polled.append("FAILED")
            if curable:
                status = code if status == 200 else status
                waits.append(math.ceil(float(headers.get("Retry-After", "30"))))
        codes.append(int(results[-1].get("http_status", 200)))
    if not queue:
        failed = [code for code in codes if code >= 400]
        status = failed[0] if failed else (202 if 202 in codes else 200)
    answer: dict[str, Any] = {"results": results}
    overall = polling.worst(polled)
    if overall is not None:  # about backups: the worst of them (records carry their own)
        answer = {"status": overall, **answer}
    return status, answer, {"Retry-After": str(max(waits))} if waits else {}


def _noted(note: Note) -> dict[str, Any]:
    """A record that asks for no backup: ``note`` (``ignored``, ``pong``, ...), never ``status``
    (which is only ever a backup's ``RUNNING``/``SUCCEEDED``/``FAILED``)."""
    return {"note": note.status, "message": note.message}


def _log_outcome(event_log: logs.EventLog, outcome: BackupOutcome, status: int) -> None:
    started = outcome.callbacks.get("backup.started")
    event_log.note(trigger_id=outcome.trigger.trigger_id, instance_id=outcome.trigger.instance_id)
    event_log.handled(
        outcome.name,
        status,
        backup_id=outcome.backup.id,
        backup_name=outcome.backup.name,
        job_id=outcome.job_id,
        callback=None if started is None else started.delivered,
    )


_STATUS_PATHS = {"backups": handlers_status.backup_status, "jobs": handlers_status.job_status}


def _serve_status(request: flask.Request) -> Answer:
    """``GET /backups/{id}`` and ``GET /jobs/{id}``, behind the same authentication as events."""
    parts = request.path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in _STATUS_PATHS or not parts[1]:
        message = "GET /healthz, /readyz, /backups/{id} or /jobs/{id}"
        return 404, {"error": "not_found", "message": message}, {}
    settings = _get_settings()
    headers = {name.lower(): value for name, value in request.headers.items()}
    events.GENERIC.verify(headers, request.get_data(), settings)
    lookup = _STATUS_PATHS[parts[0]]
    body = lookup(_get_services().taurusdb, parts[1], settings.allowed_instances)
    body["status_url"] = f"{settings.public_url or ''}{parts[0]}/{quote(parts[1], safe='')}"
    return 200, body, {}


def _outcome(outcome: BackupOutcome) -> Answer:
    """202 for a new backup, 200 for one that existed; after waiting, by how it ended.

    ``status`` and ``status_url`` are the polling contract (handlers/polling.py); a 202 also
    points at the status with ``Location``.
    """
    url = polling.status_url(_get_settings().public_url, outcome.backup.id)
    body: dict[str, Any] = {
        "status": polling.of_final(outcome.final, outcome.backup.status),
        "status_url": url,
        "job_id": outcome.job_id,
        "backup": outcome.backup.model_dump(mode="json"),
        "instance_id": outcome.trigger.instance_id,
        "trigger_id": outcome.trigger.trigger_id,
        "created": outcome.created,
    }
    if outcome.callbacks:  # whether, never how: the receiver's status and error are logged
        body["callbacks"] = {
            kind: {"delivered": d.delivered} for kind, d in outcome.callbacks.items()
        }
    if outcome.retention is not None:
        body["retention"] = outcome.retention.as_json()
    status = 202 if outcome.created else 200
    headers: dict[str, str] = {}
    if outcome.final is not None:
        if outcome.final == "SUCCEEDED":
            status = 200
        elif outcome.final == "FAILED":
            status = 502
            body.update(error="backup_failed", message="the backup ended FAILED")
        else:
            status = 504
            body.update(error="backup_timed_out", message="the backup did not end in time")
            headers["Retry-After"] = "30"
    if status == 202:
        headers["Location"] = url
    return status, body, headers


def _dry_run(outcome: DryRunOutcome, event_log: logs.EventLog) -> Answer:
    """200: what a real run would do; nothing was created, deleted or called back."""
    existing = outcome.existing
    body: dict[str, Any] = {
        "dry_run": True,
        "instance_id": outcome.trigger.instance_id,
        "trigger_id": outcome.trigger.trigger_id,
        "instance_status": outcome.instance.status,
        "backup_name": outcome.request.name,
        "backup_description": outcome.request.description,
        "existing_backup": existing.model_dump(mode="json") if existing is not None else None,
    }
    if outcome.retention is not None:
        body["retention"] = outcome.retention.as_json()
    event_log.note(trigger_id=outcome.trigger.trigger_id, instance_id=outcome.trigger.instance_id)
    event_log.handled(
        "dry_run",
        200,
        backup_id=existing.id if existing is not None else None,
        backup_name=outcome.request.name,
        instance_status=outcome.instance.status,
    )
    return 200, body, {}


def _error(exc: PredeployError) -> Answer:
    """Each failure knows its answer (errors.py)."""
    return exc.answer()


def _get_settings() -> Settings:
    global _settings, _redact
    if _settings is None:
        with _lock:
            if _settings is None:
                settings = load_settings()
                secrets = [*settings.secret_values(), settings.os_access_key or ""]
                _redact = logs.Redactor(secrets)
                logs.configure(settings.log_level, secrets)
                retry.log_retries()
                _settings = settings
    return _settings


def _get_services() -> Services:
    """One API client and one callback sender per process, built on first use."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                settings = _get_settings()
                _services = Services(
                    settings=settings,
                    taurusdb=TaurusDBClient.from_settings(settings),
                    callbacks=CallbackSender(
                        secret=settings.secrets("callback_secret"),
                        allowed_hosts=settings.callback_allowed_hosts,
                        timeout=settings.callback_timeout_seconds,
                    ),
                    smn=_get_smn(),
                )
    return _services


def _prefetch() -> None:
    """Build the services and fetch the IAM token and an API connection, ahead of the first event.

    A cold start's first event would otherwise wait for IAM before its first API call. Runs
    in a background thread; whatever fails here is only logged: the first event builds,
    fetches and connects again on its own, and reports its own failures.
    """
    try:
        _get_services().taurusdb.prefetch()
    except PredeployError as exc:
        _log.warning(_PREFETCH_FAILED, _redact(exc.message))
    except Exception as exc:  # never let a background thread die with a traceback
        _log.warning(_PREFETCH_FAILED, type(exc).__name__)


def prefetch() -> None:
    """Start fetching, in a background thread, what the first event would wait for.

    For the process that serves, once, as it starts: a server that loads this module and
    serves from the same process calls it after loading (``server.py``). functions-framework's
    own server imports this module in gunicorn's master and forks the worker that serves: the
    worker calls it as it is born (``os.register_at_fork`` below; a thread started in the
    master would not survive the fork). Without either (create_app's test client), nothing
    is prefetched.
    """
    threading.Thread(target=_prefetch, name="prefetch", daemon=True).start()


os.register_at_fork(after_in_child=prefetch)


def _get_smn() -> SmnClient:
    """The SMN certificate provider and confirmer, its URL policy from the settings."""
    global _smn
    if _smn is None:
        with _smn_lock:
            if _smn is None:
                settings = _get_settings()
                endpoint = urlsplit(settings.smn_endpoint or "").hostname
                _smn = SmnClient(
                    lambda url: _smn_url_refusal(url, settings),
                    private_hosts=[endpoint] if endpoint else [],
                    timeout=settings.api_timeout_seconds,
                )
    return _smn


def _smn_url_refusal(url: str, settings: Settings) -> str | None:
    from events import smn  # loaded with the first SMN message (and cryptography with it)

    return smn.url_refusal(url, settings)


def _redacted(text: str) -> str:
    """Belt and braces: no configured secret leaves in a response, whatever put it there."""
    return _redact(text)
