"""The failures the function knows about; each one knows its answer.

    PredeployError
    ├── InvalidEventError        the event is malformed or breaks a rule        → 400
    ├── UnsupportedMediaError    not JSON                                       → 415
    ├── PayloadTooLargeError     body over the limit                            → 413
    ├── UnauthorizedError        missing or wrong signature / token             → 401
    ├── ForbiddenError           the event targets an instance it may not       → 403
    ├── NotFoundError            no such backup or job (status endpoint)        → 404
    ├── PreconditionError        the instance is not ACTIVE:
    │   ├── InstanceBusyError        busy (BACKING UP, REBOOTING, …), will pass  → 503
    │   └── InstanceNotActiveError   FROZEN, FAILED, STORAGE FULL, …: needs a person → 409
    ├── ConfigurationError       a setting is missing or malformed              → 500
    ├── AuthenticationError      IAM refused our credentials                    → 502
    ├── ApiError                 the TaurusDB API answered with an error        → by status
    └── UpstreamUnavailableError the API could not be reached in time           → 503/504

Each class (``ApiError``: each instance, worked out once where it is made) carries what the
rest of the function asks of a failure: ``http_status`` and ``error_name`` of the answer,
``retry_helps`` (another try within this event's deadline can succeed: ``clients/retry.py``
retries it), ``redelivery_helps`` (a later delivery of the same event can succeed: a queue
is answered non-2xx for it, ``handlers/records.py``), ``busy`` (the instance is busy with
something else) and ``wait_seconds`` (the answer's ``Retry-After``). The two retry questions
differ: a missing setting is not retried now, but an operator fixes it and a redelivery then
goes through. docs/responses.md's table is checked against these by tests/unit/test_errors.py.

Messages never carry secrets, tokens, signatures or request headers: they are shown to callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BAD_RESPONSE",
    "BUSY_CODES",
    "JOB_NOT_YET_VISIBLE",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "FieldError",
    "ForbiddenError",
    "InstanceBusyError",
    "InstanceNotActiveError",
    "InvalidEventError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PreconditionError",
    "PredeployError",
    "UnauthorizedError",
    "UnsupportedMediaError",
    "UpstreamUnavailableError",
]


class PredeployError(Exception):
    """Base of every failure this function reports on purpose; a bug is any other exception."""

    http_status: int = 500
    error_name: str = "error"
    retry_helps: bool = False
    redelivery_helps: bool = False
    busy: bool = False
    wait_seconds: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, Any]:
        """What the answer's body says besides ``error`` and ``message``."""
        return {}

    def answer(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The HTTP answer for this failure: status, JSON body, headers."""
        body: dict[str, Any] = {"error": self.error_name, "message": self.message}
        body.update(self.details())
        headers = {"Retry-After": str(self.wait_seconds)} if self.wait_seconds else {}
        return self.http_status, body, headers


@dataclass(frozen=True)
class FieldError:
    """One invalid field: where it is (dotted path) and which rule it breaks."""

    field: str
    rule: str


class InvalidEventError(PredeployError):
    """The event cannot be acted on; ``errors`` names every invalid field."""

    http_status = 400
    error_name = "invalid_event"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    def details(self) -> dict[str, Any]:
        if not self.errors:
            return {}
        return {"fields": [{"field": e.field, "rule": e.rule} for e in self.errors]}


class UnsupportedMediaError(PredeployError):
    http_status = 415
    error_name = "unsupported_media_type"


class PayloadTooLargeError(PredeployError):
    http_status = 413
    error_name = "payload_too_large"


class UnauthorizedError(PredeployError):
    http_status = 401
    error_name = "unauthorized"


class ForbiddenError(PredeployError):
    http_status = 403
    error_name = "forbidden"


class NotFoundError(PredeployError):
    http_status = 404
    error_name = "not_found"


class PreconditionError(PredeployError):
    """The instance is not ``ACTIVE``, so no backup can be made of it now."""

    http_status = 409

    def __init__(self, message: str, instance_id: str, instance_status: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.instance_status = instance_status

    def details(self) -> dict[str, Any]:
        return {"instance_status": self.instance_status}


class InstanceBusyError(PreconditionError):
    """A backup or another operation runs on the instance; later it will be ``ACTIVE`` again."""

    http_status = 503  # the instance will be ACTIVE again: a retry later goes through
    error_name = "instance_busy"
    retry_helps = True
    redelivery_helps = True
    busy = True
    wait_seconds = 30


class InstanceNotActiveError(PreconditionError):
    """The instance is in a state that waiting will not end (frozen, failed, storage full)."""

    error_name = "instance_not_active"


class ConfigurationError(PredeployError):
    """A setting is missing or malformed; the message names the environment variable.

    Not retried now, but an operator fixes it: a redelivery then goes through.
    """

    error_name = "configuration_error"
    redelivery_helps = True


class AuthenticationError(PredeployError):
    """IAM did not issue a token for the configured credentials (fixed by an operator)."""

    http_status = 502
    error_name = "iam_authentication_failed"
    redelivery_helps = True

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


BUSY_CODES = frozenset(
    {
        "DBS.201205",  # a backup is in progress
        "DBS.200019",  # another operation is running on the instance
        "DBS.200047",
        "DBS.200011",
        "DBS.201202",
        "DBS.212006",
        "DBS.201014",  # operation not allowed in the current instance status
        "DBS.201015",
        "DBS.212033",  # instance is currently being operated (Huawei)
        "DBS.05000084",
    }
)
"""Codes of "the instance is busy, try again later" (research/otc-api.md §3.2)."""

_THROTTLED = frozenset({"APIGW.0308", "APIG.0308"})
JOB_NOT_YET_VISIBLE = "DBS.200543"
#: Our code for a 2xx answer we could not read: a create may have happened, never send it again.
BAD_RESPONSE = "PREDEPLOY.BAD_RESPONSE"


class ApiError(PredeployError):
    """An error answer of the TaurusDB API (or its gateway), as the API gave it.

    ``retry_after`` is the API's own ``Retry-After`` (seconds), which paces our retries;
    ``wait_seconds`` is ours, for the caller. What the answer is gets worked out here, once:
    the caller's fault keeps its status, ours or the cloud's become 5xx.
    """

    error_name = "upstream_error"

    def __init__(
        self,
        status_code: int,
        error_code: str,
        error_msg: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"TaurusDB API error {status_code} {error_code}: {error_msg}")
        self.status_code = status_code
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.retry_after = retry_after
        # A 409 with a busy code (DBS.201014 whatever its status): another backup or
        # operation runs, later it goes through.
        self.busy = error_code == "DBS.201014" or (status_code == 409 and error_code in BUSY_CODES)
        self.retry_helps = (
            self.busy
            or status_code == 429
            or error_code in _THROTTLED  # throttled
            or (status_code >= 500 and error_code != BAD_RESPONSE)  # the cloud failed
            or error_code == JOB_NOT_YET_VISIBLE  # a job right after its creation
        )
        # 401/403: our credentials or permissions, which an operator fixes.
        self.redelivery_helps = self.retry_helps or status_code in (401, 403)
        after = max(1, round(retry_after)) if retry_after else None
        if self.retry_helps:
            self.http_status = 503
            self.wait_seconds = after or (30 if self.busy else 10)
        elif status_code in (400, 404, 409, 422):
            self.http_status = status_code
        else:
            self.http_status = 502  # 401/403: ours to fix; a 5xx we could not read

    def details(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error_code": self.error_code, "error_msg": self.error_msg}
        if self.request_id:
            body["request_id"] = self.request_id
        return body


class UpstreamUnavailableError(PredeployError):
    """The API could not be reached, or did not answer in time; a retry may help."""

    error_name = "upstream_unavailable"
    retry_helps = True
    redelivery_helps = True
    wait_seconds = 5

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        self.http_status = 504 if timed_out else 503
