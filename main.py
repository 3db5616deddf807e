"""Entry points of the function; they wire events → handlers → clients and map errors to statuses.

``webhook`` (HTTP): ``functions-framework --target=webhook``; ``GET /healthz`` and ``/readyz``
answer probes (health.py). Nothing else lives here but the wiring, the one outcome log line per
event (logs.EventLog) and the one table from failures to HTTP statuses.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import flask
import functions_framework

import events
import health
import logs
from clients import retry
from clients.callback import CallbackSender
from clients.retry import is_busy, is_retryable
from clients.taurusdb import TaurusDBClient
from config import Settings, load_settings
from errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ForbiddenError,
    InstanceBusyError,
    InstanceNotActiveError,
    InvalidEventError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionError,
    PredeployError,
    UnauthorizedError,
    UnsupportedMediaError,
    UpstreamUnavailableError,
)
from events import generic
from handlers import pre_deploy
from handlers import status as handlers_status
from handlers.pre_deploy import BackupOutcome, DryRunOutcome, Result, Services, TriggerFailure
from health import Answer

__all__ = ["webhook"]

_lock = threading.Lock()
_settings: Settings | None = None
_services: Services | None = None

logs.configure()  # LOG_LEVEL from the environment until the settings are loaded


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    """Pipelines' webhooks: a signed pre-deploy event in, ``202 {job_id, backup}`` out."""
    if request.method in ("GET", "HEAD"):
        probe = health.probe(request.path, _get_settings)
        if probe is not None:
            return _response(probe)
    with logs.EventLog(dict(request.headers.items()), entry_point="webhook") as event_log:
        answer = _answer(request, event_log)
    return _response(answer)


def _answer(request: flask.Request, event_log: logs.EventLog) -> Answer:
    """Serve one event; every failure becomes its status and one outcome line."""
    try:
        return _serve(request, event_log)
    except PredeployError as exc:
        status, body, headers = _error(exc)
        event_log.failed(body["error"], status, exc.message, error_code=body.get("error_code"))
        return status, body, headers
    except Exception as exc:  # a bug: the log line names the exception, the caller learns no more
        name = type(exc).__name__
        event_log.failed("internal_error", 500, f"unexpected {name}", exception=name)
        message = "unexpected error; the function's log has the details"
        return 500, {"error": "internal_error", "message": message}, {}


def _response(answer: Answer) -> flask.Response:
    status, body, headers = answer
    return flask.Response(
        json.dumps(body), status=status, headers=headers, mimetype="application/json"
    )


def _serve(request: flask.Request, event_log: logs.EventLog) -> Answer:
    if request.method == "GET":
        return _serve_status(request)
    if request.method != "POST":
        return 405, {"error": "method_not_allowed", "message": "use POST"}, {"Allow": "GET, POST"}
    settings = _get_settings()
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    headers = {name.lower(): value for name, value in request.headers.items()}

    source = events.detect(headers)
    event_log.note(source=source.NAME)
    source.verify(headers, body, settings)
    triggers = source.parse(headers, body, settings)
    if triggers:  # a refusal of the event names its trigger (and instance, when only one)
        only = triggers[0].instance_id if len(triggers) == 1 else None
        event_log.note(trigger_id=triggers[0].trigger_id, instance_id=only)
    results = pre_deploy.handle_all(triggers, _get_services())
    answers = [_result(result, event_log) for result in results]
    if len(answers) == 1:
        return answers[0]
    return _combined(answers)


def _result(result: Result, event_log: logs.EventLog) -> Answer:
    """One trigger's answer, and its outcome line."""
    trigger = result.trigger
    event_log.note(trigger_id=trigger.trigger_id, instance_id=trigger.instance_id)
    if isinstance(result, TriggerFailure):
        status, body, headers = _error(result.error)
        event_log.failed(
            body["error"], status, result.error.message, error_code=body.get("error_code")
        )
        body.update(instance_id=trigger.instance_id, trigger_id=trigger.trigger_id)
        return status, body, headers
    if isinstance(result, DryRunOutcome):
        existing = result.existing
        event_log.handled("dry_run", 200, backup_id=existing.id if existing else None)
        return _dry_run(result)
    answer = _outcome(result)
    started = result.callbacks.get("backup.started")
    event_log.handled(
        _outcome_name(result),
        answer[0],
        backup_id=result.backup.id,
        job_id=result.job_id,
        callback=None if started is None else started.delivered,
    )
    return answer


def _combined(answers: list[Answer]) -> Answer:
    """Several instances: every result in order; the worst status; the longest Retry-After."""
    status = max(status for status, _, _ in answers)
    after = [int(h["Retry-After"]) for _, _, h in answers if "Retry-After" in h]
    headers = {"Retry-After": str(max(after))} if after else {}
    return status, {"results": [body for _, body, _ in answers]}, headers


_STATUS_PATHS = {"backups": handlers_status.backup_status, "jobs": handlers_status.job_status}


def _serve_status(request: flask.Request) -> Answer:
    """``GET /backups/{id}`` and ``GET /jobs/{id}``, behind the same authentication as events."""
    parts = request.path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in _STATUS_PATHS or not parts[1]:
        message = "GET /healthz, /readyz, /backups/{id} or /jobs/{id}"
        return 404, {"error": "not_found", "message": message}, {}
    settings = _get_settings()
    headers = {name.lower(): value for name, value in request.headers.items()}
    generic.verify(headers, request.get_data(), settings)
    lookup = _STATUS_PATHS[parts[0]]
    return 200, lookup(_get_services().taurusdb, parts[1]), {}


def _outcome_name(outcome: BackupOutcome) -> str:
    if outcome.final is not None:
        return f"backup_{outcome.final.lower()}"
    return "backup_started" if outcome.created else "backup_exists"


def _outcome(outcome: BackupOutcome) -> Answer:
    """202 for a new backup, 200 for one that existed; after waiting, by how it ended."""
    body: dict[str, Any] = {
        "job_id": outcome.job_id,
        "backup": outcome.backup.model_dump(mode="json"),
        "instance_id": outcome.trigger.instance_id,
        "trigger_id": outcome.trigger.trigger_id,
        "created": outcome.created,
    }
    if outcome.callbacks:
        body["callbacks"] = {
            kind: {"delivered": d.delivered, "status": d.status, "error": d.error}
            for kind, d in outcome.callbacks.items()
        }
    if outcome.retention is not None:
        body["retention"] = outcome.retention.as_json()
    status = 202 if outcome.created else 200
    headers: dict[str, str] = {}
    if outcome.final is not None:
        body["status"] = outcome.final
        if outcome.final == "SUCCEEDED":
            status = 200
        elif outcome.final == "FAILED":
            status = 502
            body.update(error="backup_failed", message="the backup ended FAILED")
        else:
            status = 504
            body.update(error="backup_timed_out", message="the backup did not end in time")
            headers["Retry-After"] = "30"
    return status, body, headers


def _dry_run(outcome: DryRunOutcome) -> Answer:
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
    return 200, body, {}


def _error(exc: PredeployError) -> Answer:
    """The one table from failures to statuses (see errors.py for the tree)."""
    body: dict[str, Any] = {"error": _ERROR_NAMES.get(type(exc), "error"), "message": exc.message}
    headers: dict[str, str] = {}
    status = 500
    if isinstance(exc, InvalidEventError):
        status = 400
        if exc.errors:
            body["fields"] = [{"field": e.field, "rule": e.rule} for e in exc.errors]
    elif isinstance(exc, UnsupportedMediaError):
        status = 415
    elif isinstance(exc, PayloadTooLargeError):
        status = 413
    elif isinstance(exc, UnauthorizedError):
        status = 401
    elif isinstance(exc, ForbiddenError):
        status = 403
    elif isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, PreconditionError):
        body["instance_status"] = exc.instance_status
        status = 409
        if isinstance(exc, InstanceBusyError):
            status = 503  # the instance will be ACTIVE again: a retry later goes through
            headers["Retry-After"] = "30"
    elif isinstance(exc, AuthenticationError):
        status = 502
    elif isinstance(exc, UpstreamUnavailableError):
        status = 504 if exc.timed_out else 503
        headers["Retry-After"] = "5"
    elif isinstance(exc, ApiError):
        status, retry_after = _api_status(exc)
        body.update(error_code=exc.error_code, error_msg=exc.error_msg)
        if exc.request_id:
            body["request_id"] = exc.request_id
        if retry_after:
            headers["Retry-After"] = retry_after
    return status, body, headers


def _api_status(exc: ApiError) -> tuple[int, str | None]:
    """API errors: the caller's fault keeps its status, ours or the cloud's become 5xx."""
    after = str(max(1, round(exc.retry_after))) if exc.retry_after else None
    if is_busy(exc):
        return 503, after or "30"  # another backup or operation runs: later it goes through
    if is_retryable(exc):
        return 503, after or "10"  # throttled, or the cloud failed: try again later
    if exc.status_code in (400, 404, 409, 422):
        return exc.status_code, None
    return 502, None  # 401/403: our credentials or permissions; 5xx: the cloud's fault


_ERROR_NAMES: dict[type[PredeployError], str] = {
    InvalidEventError: "invalid_event",
    UnsupportedMediaError: "unsupported_media_type",
    PayloadTooLargeError: "payload_too_large",
    UnauthorizedError: "unauthorized",
    ForbiddenError: "forbidden",
    NotFoundError: "not_found",
    InstanceBusyError: "instance_busy",
    InstanceNotActiveError: "instance_not_active",
    ConfigurationError: "configuration_error",
    AuthenticationError: "iam_authentication_failed",
    ApiError: "upstream_error",
    UpstreamUnavailableError: "upstream_unavailable",
}


def _get_settings() -> Settings:
    global _settings
    if _settings is None:
        settings = load_settings()
        logs.configure(settings.log_level, settings.secret_values())
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
                        secret=_secret(settings.callback_secret),
                        allowed_hosts=settings.callback_allowed_hosts,
                        timeout=settings.callback_timeout_seconds,
                    ),
                )
    return _services


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())
