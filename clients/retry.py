"""What is worth retrying, and the deadline every retry fits in.

Retryable: the API could not be reached or timed out; throttling (429, ``APIGW.0308``); the
cloud's own failures (5xx); the instance being busy with another backup or operation (409
with a code of ``errors.BUSY_CODES``, and ``DBS.201014`` whatever its status; or a passing
instance status seen by the pre-check, ``InstanceBusyError``); a job that is not queryable
yet right after creation (``DBS.200543``). Everything else is permanent: a retry would only
repeat it. Token expiry (401, ``APIGW.0307``) is not here: ``TokenAuth`` renews the token
once, inside the request. Each error knows which it is (``errors.py``, ``retry_helps`` and
``busy``); this module reads it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Iterator

import stamina
import stamina.instrumentation

from errors import (
    BUSY_CODES,
    JOB_NOT_YET_VISIBLE,
    ApiError,
    PredeployError,
    UpstreamUnavailableError,
)

__all__ = [
    "BUSY_CODES",
    "JOB_NOT_YET_VISIBLE",
    "Deadline",
    "is_busy",
    "is_retryable",
    "log_retries",
    "request_timeout",
    "retry_after",
    "retrying",
    "within",
]


def is_busy(exc: BaseException) -> bool:
    """The instance is busy: a backup or another operation runs; it will pass later.

    Either the API said so (a 409 with a busy code) or the pre-check saw a passing status.
    """
    return isinstance(exc, PredeployError) and exc.busy


def is_retryable(exc: BaseException) -> bool:
    """Whether the same request, sent again within the deadline, may succeed."""
    return isinstance(exc, PredeployError) and exc.retry_helps


def retry_after(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` for this failure, in seconds, when it gave one."""
    return exc.retry_after if isinstance(exc, ApiError) else None


class Deadline:
    """One time budget for one event: every retry and every request fits inside it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


@contextlib.contextmanager
def within(deadline: Deadline) -> Iterator[Deadline]:
    """Bound every API request made in this block by ``deadline`` (see ``request_timeout``)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def request_timeout(default: float) -> float:
    """The timeout for the next request: ``default``, or less if the deadline is nearer.

    Raises ``UpstreamUnavailableError`` when the deadline has already passed, so no request
    starts that could not finish in time.
    """
    deadline = _current.get()
    if deadline is None:
        return default
    left = deadline.remaining()
    if left < _SHORTEST_USEFUL_REQUEST:
        raise UpstreamUnavailableError(
            f"the deadline of {deadline.seconds:g} s ran out", timed_out=True
        )
    return min(default, left)


_SHORTEST_USEFUL_REQUEST = 0.05
_SHORTEST_USEFUL_ATTEMPT = 0.25


def retrying(
    deadline: Deadline,
    *,
    on: Callable[[BaseException], bool] = is_retryable,
    wait_initial: float = 0.25,
    wait_max: float = 2.0,
) -> Iterator[stamina.Attempt]:
    """``stamina`` attempts for one operation: exponential backoff with jitter, the server's
    ``Retry-After`` honoured, and no retry that could not finish before ``deadline``."""

    failures = 0

    def backoff(exc: Exception) -> bool | float:
        """The wait before the next attempt, or False when no attempt could finish in time."""
        nonlocal failures
        if not on(exc):
            return False
        failures += 1
        after = retry_after(exc)
        if after is None:
            exponential = min(wait_max, wait_initial * 2 ** (failures - 1))
            after = exponential + random.uniform(0, wait_initial)  # noqa: S311  # nosec B311 # jitter, not security
        if after + _SHORTEST_USEFUL_ATTEMPT >= deadline.remaining():
            return False
        return after

    return iter(
        stamina.retry_context(
            on=backoff,
            attempts=None,
            timeout=max(deadline.remaining(), 0.001),
            wait_initial=wait_initial,
            wait_max=wait_max,
            wait_jitter=wait_initial,
        )
    )


def log_retries() -> None:
    """Report stamina's scheduled retries as our JSON log lines instead of its default ones."""
    logger = logging.getLogger("predeploy.retry")

    def hook(details: stamina.instrumentation.RetryDetails) -> None:
        logger.warning(
            "retrying after %s",
            type(details.caused_by).__name__,
            extra={
                "fields": {
                    "outcome": "retry_scheduled",
                    "retry_num": details.retry_num,
                    "wait_seconds": round(details.wait_for, 3),
                    "waited_seconds": round(details.waited_so_far, 3),
                    "cause": str(details.caused_by)[:200],
                }
            },
        )

    stamina.instrumentation.set_on_retry_hooks([hook])
