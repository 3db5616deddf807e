"""HTTP with retries inside one deadline: 429/503/504 and connection errors, ``Retry-After``.

Standard library only (``urllib``). Redirects are not followed: the credentials must reach the
function's own URL and nothing else.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = [
    "RETRY_STATUSES",
    "Answer",
    "Deadline",
    "GaveUp",
    "Transport",
    "retry_after_seconds",
]

RETRY_STATUSES = frozenset({429, 503, 504})
_MAX_BACKOFF = 30.0


class Deadline:
    """``--timeout``: everything (retries, waits, polls) happens before it."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.start = clock()
        self.end = self.start + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.start


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any  # the JSON document, or None when the body was not JSON

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class GaveUp(Exception):
    """No usable answer before the deadline; ``last`` says what the last attempt got."""

    def __init__(self, last: str, answer: Answer | None = None) -> None:
        super().__init__(last)
        self.last = last
        self.answer = answer


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(tz=timezone.utc)
    return max(0.0, (when - current).total_seconds())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Transport:
    """One request, retried while a retry can help and the deadline allows."""

    def __init__(
        self,
        *,
        user_agent: str,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str, float], None] | None = None,
    ) -> None:
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._user_agent = user_agent
        self._sleep = sleep
        self._on_retry = on_retry

    def send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Callable[[], dict[str, str]],
        deadline: Deadline,
    ) -> Answer:
        """The first answer that is not 429/503/504; ``headers`` is called per attempt (a
        signature carries the time it was made)."""
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline.remaining()
            if remaining <= 0:
                raise GaveUp("the --timeout ran out before the first attempt")
            answer: Answer | None = None
            wait: float | None = None
            try:
                answer = self._once(method, url, body, headers(), min(remaining, 30.0))
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                last = _describe(exc)
            else:
                if answer.status not in RETRY_STATUSES:
                    return answer
                last = f"HTTP {answer.status}" + _error_name(answer)
                wait = retry_after_seconds(answer.header("Retry-After"))
            if wait is None:
                wait = min(_MAX_BACKOFF, 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2)  # noqa: S311  # nosec B311 # jitter
            if wait >= deadline.remaining():
                raise GaveUp(f"{last}; a retry in {wait:.0f} s would pass the --timeout", answer)
            if self._on_retry is not None:
                self._on_retry(last, wait)
            self._sleep(wait)

    def _once(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> Answer:
        request = urllib.request.Request(  # noqa: S310  # nosec B310 # scheme checked by the CLI
            url, data=body, method=method, headers={"User-Agent": self._user_agent, **headers}
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:  # nosec B310
                return _answer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _answer(exc.code, dict(exc.headers.items()), exc.read())


def _answer(status: int, headers: dict[str, str], raw: bytes) -> Answer:
    try:
        document = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        document = None
    return Answer(status, headers, document)


def _error_name(answer: Answer) -> str:
    if isinstance(answer.body, dict) and isinstance(answer.body.get("error"), str):
        return f" ({answer.body['error']})"
    return ""


def _describe(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return (
        f"no answer ({type(reason).__name__}: {reason})"
        if str(reason)
        else f"no answer ({type(reason).__name__})"
    )
