"""Entry points of the function; they wire events → handlers → clients → responses.

``webhook`` (HTTP, internet-facing): ``functions-framework --target=webhook``.
``event`` (queue deliveries: CloudEvents, Pub/Sub push, FunctionGraph triggers on ``/invoke``):
``functions-framework --target=event``. Both are plain HTTP functions, so a malformed delivery
gets our JSON error, never a page that echoes the request; both answer ``GET /healthz`` and
``/readyz`` (health.py). Nothing else lives here but the wiring and the services, built once
per process; the answers and their outcome log lines are shaped in responses.py, each failure
knows its own (errors.py).
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit

import flask
import functions_framework

import events
import health
import logs
import responses
from clients import retry
from clients.callback import CallbackSender
from clients.smn import SmnClient
from clients.taurusdb import TaurusDBClient
from config import Settings, load_settings
from errors import PredeployError
from events.base import check_batch, read_body
from events.senders import redelivers_every_failure
from handlers import records, status
from handlers.pre_deploy import Services

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
    return _serve(request, events.WEBHOOK, "webhook")


@functions_framework.http
def event(request: flask.Request) -> flask.Response:
    """Queue deliveries: ``{"results": [...]}``, non-2xx only when a retry can help."""
    return _serve(request, events.EVENT, "event")


def _serve(request: flask.Request, entry: events.Entry, name: str) -> flask.Response:
    """A health probe, or one request under its outcome log line; every failure answered."""
    if request.method in ("GET", "HEAD"):
        probe = health.probe(request.path, _get_settings)
        if probe is not None:
            return responses.to_flask(probe, _redact)
    with logs.EventLog(dict(request.headers.items()), entry_point=name) as event_log:
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            answer = _route(request, headers, entry, event_log)
        except PredeployError as exc:
            acknowledge = (
                entry.queue and not exc.redelivery_helps and redelivers_every_failure(headers)
            )
            answer = responses.of_failure(exc, event_log, acknowledge=acknowledge)
        except Exception as exc:  # a bug
            answer = responses.of_internal_error(exc, event_log)
    return responses.to_flask(answer, _redact)


def _route(
    request: flask.Request, headers: dict[str, str], entry: events.Entry, event_log: logs.EventLog
) -> responses.Answer:
    """By method and path: FunctionGraph's initializer, the status endpoint, a delivery."""
    if entry.queue and request.path.rstrip("/") == "/init":
        _get_services()  # FunctionGraph's initializer: a broken setting shows here
        return responses.Answer(200, {"status": "ready"})
    if request.method == "GET" and not entry.queue:  # the status endpoint, signed as events are
        lookup = status.route(request.path)
        if lookup is None:
            return responses.Answer(404, {"error": "not_found", "message": status.PATHS})
        settings = _get_settings()
        events.GENERIC.verify(headers, request.get_data(), settings)
        api = _get_services().taurusdb
        return responses.Answer(200, lookup(api, settings.public_url, settings.allowed_instances))
    if request.method != "POST":
        allow = "POST" if entry.queue else "GET, POST"
        failure = {"error": "method_not_allowed", "message": "use POST"}
        return responses.Answer(405, failure, {"Allow": allow})
    settings = _get_settings()
    body = read_body(request.stream, request.content_length, settings.max_body_bytes)
    envelope = entry.envelope(headers, body)
    if envelope is None:
        return _deliver(entry, headers, body, settings, event_log)
    try:  # a wrapped HTTP request (FunctionGraph APIG): served like webhook, answered wrapped
        inner_headers, inner_body = envelope.open(headers, body)
        reply = _deliver(events.WEBHOOK, inner_headers, inner_body, settings, event_log)
    except PredeployError as exc:
        reply = responses.of_failure(exc, event_log, acknowledge=False)
    return responses.Answer(*envelope.seal(reply.status, reply.body, reply.headers))


def _deliver(
    entry: events.Entry,
    headers: dict[str, str],
    body: bytes,
    settings: Settings,
    event_log: logs.EventLog,
) -> responses.Answer:
    """Which sender, verified and parsed into records, each handled, the outcomes answered."""
    source = entry.detect(headers, body)
    event_log.note(source=source.NAME)
    delivery = events.receive(
        entry, headers, body, settings, source, certificates=lambda url: _get_smn().certificate(url)
    )
    check_batch(delivery.records, settings)
    outcomes = records.handle_delivery(delivery.records, _get_services(), queue=entry.queue)
    return responses.of_delivery(
        delivery.records,
        outcomes,
        event_log,
        listed=entry.queue or delivery.batch,
        queue=entry.queue,
        public_url=settings.public_url,
    )


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
