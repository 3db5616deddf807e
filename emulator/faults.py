"""Fault injection: what the tests make the API do wrong, per endpoint, over HTTP.

A fault names a route (``create_backup``, ``list_backups``, ``delete_backup``, ``show_job``,
``show_instance``, ``issue_token``, or ``*`` for any) and says what happens to the next
``times`` requests on it (after letting ``skip`` of them through untouched): a delay, an
injected error answer (status, code, message, ``Retry-After``), or a dropped connection,
either before the request is handled (nothing happened) or after (it happened, but the answer
is lost: the nastiest case for a client). An injected ``error_msg`` may quote a header of the
request it answers, ``{header:x-auth-token}``, as gateways that echo a credential do.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emulator import rules

__all__ = ["DropConnection", "Fault", "Faults", "parse_fault"]

DropWhen = Literal["before", "after"]
ROUTES = frozenset(
    {
        "*",
        "issue_token",
        "create_backup",
        "list_backups",
        "delete_backup",
        "show_job",
        "show_instance",
    }
)


_HEADER = re.compile(r"\{header:([A-Za-z0-9-]+)\}")


class DropConnection(Exception):
    """Close the connection without answering."""


@dataclass(frozen=True)
class Fault:
    route: str
    status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    retry_after: str | None = None
    latency_seconds: float = 0.0
    drop: DropWhen | None = None
    times: int | None = 1  # None: until cleared
    skip: int = 0  # matching requests that pass untouched before the fault applies

    def answer(
        self, request_id: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The injected answer; ``headers`` (lower-cased names) fill ``{header:NAME}``."""
        status = self.status or 500
        code = self.error_code or f"EMULATOR.FAULT.{status}"
        sent = headers or {}
        message = _HEADER.sub(
            lambda m: sent.get(m.group(1).lower(), ""), self.error_msg or "Injected fault."
        )
        body: dict[str, Any] = {"error_code": code, "error_msg": message}
        if code.startswith(("APIGW.", "APIG.")):
            body["request_id"] = request_id
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return status, body, headers


class Faults:
    """The armed faults; thread-safe, each fault used up after ``times`` matching requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[list[Any]] = []  # [fault, remaining, still to skip]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._armed.append([fault, fault.times, fault.skip])

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, route: str) -> Fault | None:
        """The first armed fault for ``route``, counting this request against it."""
        with self._lock:
            for entry in self._armed:
                fault, remaining, skip = entry
                if fault.route not in (route, "*"):
                    continue
                if skip > 0:
                    entry[2] = skip - 1
                    return None
                if remaining is not None:
                    entry[1] = remaining - 1
                    if entry[1] <= 0:
                        self._armed.remove(entry)
                return fault  # type: ignore[no-any-return]
        return None

    def armed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"route": f.route, "remaining": n} for f, n, _ in self._armed]


def parse_fault(body: dict[str, Any]) -> Fault:
    """A fault from its JSON form, with a clear admin error for each bad field."""
    route = body.get("route")
    if route not in ROUTES:
        raise rules.ADMIN_BAD_REQUEST.error(f"route must be one of {sorted(ROUTES)}")
    status = body.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise rules.ADMIN_BAD_REQUEST.error("status must be an HTTP status code")
    drop = body.get("drop")
    if drop not in (None, "before", "after"):
        raise rules.ADMIN_BAD_REQUEST.error("drop must be 'before' or 'after'")
    latency = body.get("latency_seconds", 0.0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise rules.ADMIN_BAD_REQUEST.error("latency_seconds must be a number >= 0")
    times = body.get("times", 1)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise rules.ADMIN_BAD_REQUEST.error("times must be a whole number >= 1, or null")
    skip = body.get("skip", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise rules.ADMIN_BAD_REQUEST.error("skip must be a whole number >= 0")
    retry_after = body.get("retry_after")
    for key in ("error_code", "error_msg"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise rules.ADMIN_BAD_REQUEST.error(f"{key} must be a string")
    unknown = set(body) - {
        "route", "status", "error_code", "error_msg", "retry_after", "latency_seconds",
        "drop", "times", "skip",
    }  # fmt: skip
    if unknown:
        raise rules.ADMIN_BAD_REQUEST.error(f"unknown fault fields: {sorted(unknown)}")
    return Fault(
        route=route,
        status=status,
        error_code=body.get("error_code"),
        error_msg=body.get("error_msg"),
        retry_after=None if retry_after is None else str(retry_after),
        latency_seconds=float(latency),
        drop=drop,
        times=times,
        skip=skip,
    )
