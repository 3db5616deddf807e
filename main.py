"""Entry points of the function; they wire events → handlers → clients and map errors to statuses.

``webhook`` (HTTP): ``functions-framework --target=webhook``. Nothing else lives here but the
wiring and the one table from failures to HTTP statuses.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import flask
import functions_framework

import events
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
from events.base import check_batch
from handlers import pre_deploy
from handlers.pre_deploy import BackupStarted, Services

__all__ = ["webhook"]

_log = logging.getLogger("predeploy.main")
_lock = threading.Lock()
_settings: Settings | None = None
_services: Services | None = None


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    """Pipelines' webhooks: a signed pre-deploy event in, ``202 {job_id, backup}`` out."""
    token = logs.correlation_id.set(_correlation_id(request))
    started = time.monotonic()
    try:
        status, body, headers = _serve(request)
    except PredeployError as exc:
        status, body, headers = _error(exc)
    except Exception:
        _log.exception("unexpected error", extra={"fields": {"outcome": "internal_error"}})
        status, body, headers = (
            500,
            {
                "error": "internal_error",
                "message": "unexpected error; the function's log has the details",
            },
            {},
        )
    finally:
        logs.correlation_id.reset(token)
    _log.debug("answered", extra={"fields": {"status": status, "ms": _ms(started)}})
    payload = _redacted(json.dumps(body))
    if status == 413:
        # functions-framework reads whatever is left of the request after a response that is
        # not streamed; for a body over the limit that would undo the limit. Streamed, it
        # leaves the rest unread (the server drops the connection).
        return flask.Response(
            iter([payload]), status=status, headers=headers, mimetype="application/json"
        )
    return flask.Response(payload, status=status, headers=headers, mimetype="application/json")


def _serve(request: flask.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
    if request.method != "POST":
        return 405, {"error": "method_not_allowed", "message": "use POST"}, {"Allow": "POST"}
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

    source = events.detect(headers)
    source.verify(headers, body, settings)
    triggers = source.parse(headers, body, settings)
    check_batch(triggers, settings)
    services = _get_services()
    results = [pre_deploy.handle(trigger, services) for trigger in triggers]
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


def _error(exc: PredeployError) -> tuple[int, dict[str, Any], dict[str, str]]:
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
    level = logging.ERROR if status >= 500 else logging.WARNING
    _log.log(
        level,
        "event refused" if status < 500 else "event failed",
        extra={"fields": {"outcome": body["error"], "status": status, "reason": exc.message}},
    )
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


def _correlation_id(request: flask.Request) -> str | None:
    for name in ("Function-Execution-Id", "X-CFF-Request-Id", "X-Request-Id"):
        value = request.headers.get(name)
        if value:
            return value[:128]
    return None


def _redacted(text: str) -> str:
    """Belt and braces: no configured secret leaves in a response, whatever put it there."""
    return logs.redact(text, _settings.secret_values()) if _settings is not None else text


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
