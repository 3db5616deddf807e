"""Framework-free request/response/route types, so the API logic never touches sockets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    #: Header names lower-cased; the first value wins for repeated headers.
    headers: dict[str, str]
    body: bytes
    #: How the client reached us (from the Host header), for links such as the IAM catalog.
    base_url: str
    #: The path and query as sent (percent-encoded), which AK/SK signatures cover.
    raw_path: str = ""
    raw_query: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent instead of ``body`` as JSON, with the Content-Type of ``headers`` (a certificate).
    raw: bytes | None = None


@dataclass(frozen=True)
class Call:
    """One matched request handed to a route handler."""

    request: Request
    params: dict[str, str]
    request_id: str


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    """``name`` is the stable endpoint key (e.g. for per-endpoint fault injection later)."""

    name: str
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    authenticated: bool = False

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None
