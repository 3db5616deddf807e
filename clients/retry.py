"""What is worth retrying: one taxonomy of failures for the whole function.

Retryable: the API could not be reached or timed out; throttling (429, ``APIGW.0308``); the
cloud's own failures (5xx); the instance being busy with another backup or operation (409
with the codes below, and ``DBS.201014`` whatever its status); a job that is not queryable
yet right after creation (``DBS.200543``). Everything else is permanent: a retry would only
repeat it. Token expiry (401, ``APIGW.0307``) is not here: ``TokenAuth`` renews the token
once, inside the request.
"""

from __future__ import annotations

from errors import ApiError, UpstreamUnavailableError

__all__ = ["BUSY_CODES", "is_busy", "is_retryable", "retry_after"]

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


def is_busy(exc: BaseException) -> bool:
    """The instance is busy: a backup or another operation runs; it will pass later."""
    if not isinstance(exc, ApiError):
        return False
    return exc.error_code == "DBS.201014" or (
        exc.status_code == 409 and exc.error_code in BUSY_CODES
    )


def is_retryable(exc: BaseException) -> bool:
    """Whether the same request, sent again later, may succeed."""
    if isinstance(exc, UpstreamUnavailableError):
        return True
    if not isinstance(exc, ApiError):
        return False
    if exc.status_code == 429 or exc.error_code in _THROTTLED:
        return True
    if exc.status_code >= 500 and exc.error_code != "PREDEPLOY.BAD_RESPONSE":
        return True
    return is_busy(exc) or exc.error_code == JOB_NOT_YET_VISIBLE


def retry_after(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` for this failure, in seconds, when it gave one."""
    return exc.retry_after if isinstance(exc, ApiError) else None
