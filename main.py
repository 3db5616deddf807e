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
from clients.callback import CallbackSender
from clients.taurusdb import TaurusDBClient
from config import Settings, load_settings
from errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    ForbiddenError,
    InvalidEventError,
    PayloadTooLargeError,
    PredeployError,
    UnauthorizedError,
    UnsupportedMediaError,
    UpstreamUnavailableError,
)
from handlers import pre_deploy
from handlers.pre_deploy import BackupStarted, Services
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
        return _response(_get(request))
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


def _get(request: flask.Request) -> Answer:
    """GET routes: the probes (health.py); GET /backups/{id} and /jobs/{id} will join here."""
    answer = health.probe(request.path, _get_settings)
    if answer is not None:
        return answer
    return 405, {"error": "method_not_allowed", "message": "use POST"}, {"Allow": "POST"}


def _response(answer: Answer) -> flask.Response:
    status, body, headers = answer
    return flask.Response(
        json.dumps(body), status=status, headers=headers, mimetype="application/json"
    )


def _serve(request: flask.Request, event_log: logs.EventLog) -> Answer:
    if request.method != "POST":
        return 405, {"error": "method_not_allowed", "message": "use POST"}, {"Allow": "POST"}
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
    services = _get_services()
    results = []
    for trigger in triggers:
        event_log.note(trigger_id=trigger.trigger_id, instance_id=trigger.instance_id)
        outcome = pre_deploy.handle(trigger, services)
        event_log.handled(
            "backup_started",
            202,
            backup_id=outcome.result.backup.id,
            job_id=outcome.result.job_id,
            callback=None if outcome.callback is None else outcome.callback.delivered,
        )
        results.append(outcome)
    if len(results) == 1:
        return 202, _started(results[0]), {}
    return 202, {"results": [_started(result) for result in results]}, {}


def _started(outcome: BackupStarted) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": outcome.result.job_id,
        "backup": outcome.result.backup.model_dump(mode="json"),
        "instance_id": outcome.trigger.instance_id,
        "trigger_id": outcome.trigger.trigger_id,
    }
    if outcome.callback is not None:
        body["callback"] = {
            "delivered": outcome.callback.delivered,
            "status": outcome.callback.status,
            "error": outcome.callback.error,
        }
    return body


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
    if exc.status_code == 409:
        return 409, "30"  # another backup or operation is running: later, it will go through
    if exc.status_code == 429:
        return 503, "10"
    if exc.status_code in (400, 404, 422):
        return exc.status_code, None
    return 502, None  # 401/403: our credentials or permissions; 5xx: the cloud's fault


_ERROR_NAMES: dict[type[PredeployError], str] = {
    InvalidEventError: "invalid_event",
    UnsupportedMediaError: "unsupported_media_type",
    PayloadTooLargeError: "payload_too_large",
    UnauthorizedError: "unauthorized",
    ForbiddenError: "forbidden",
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
