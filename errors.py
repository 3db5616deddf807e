"""The failures the function knows about; ``main.py`` alone maps them to HTTP statuses.

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

Messages never carry secrets, tokens, signatures or request headers: they are shown to callers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
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
    """Base of every failure this function reports on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldError:
    """One invalid field: where it is (dotted path) and which rule it breaks."""

    field: str
    rule: str


class InvalidEventError(PredeployError):
    """The event cannot be acted on; ``errors`` names every invalid field."""

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class UnsupportedMediaError(PredeployError):
    pass


class PayloadTooLargeError(PredeployError):
    pass


class UnauthorizedError(PredeployError):
    pass


class ForbiddenError(PredeployError):
    pass


class NotFoundError(PredeployError):
    pass


class PreconditionError(PredeployError):
    """The instance is not ``ACTIVE``, so no backup can be made of it now."""

    def __init__(self, message: str, instance_id: str, instance_status: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id
        self.instance_status = instance_status


class InstanceBusyError(PreconditionError):
    """A backup or another operation runs on the instance; later it will be ``ACTIVE`` again."""


class InstanceNotActiveError(PreconditionError):
    """The instance is in a state that waiting will not end (frozen, failed, storage full)."""


class ConfigurationError(PredeployError):
    """A setting is missing or malformed; the message names the environment variable."""


class AuthenticationError(PredeployError):
    """IAM did not issue a token for the configured credentials."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ApiError(PredeployError):
    """An error answer of the TaurusDB API (or its gateway), as the API gave it."""

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


class UpstreamUnavailableError(PredeployError):
    """The API could not be reached, or did not answer in time; a retry may help."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
