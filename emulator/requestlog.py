"""What clients sent, in order, with secrets replaced, so tests can assert on the wire."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from emulator.wire import Request

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"x-auth-token", "authorization", "x-security-token", "x-subject-token"})
SECRET_KEYS = frozenset({"password"})


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    #: Lower-cased header names; secret values replaced by "<redacted>".
    headers: dict[str, str]
    #: Parsed JSON body (secrets redacted), or None if absent or not JSON.
    body: Any
    status: int
    request_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: REDACTED if k.lower() in SECRET_HEADERS else v for k, v in headers.items()}


def redact_json(value: Any) -> Any:
    """Replace secret leaves (e.g. auth.identity.password.user.password), keep the structure."""
    if isinstance(value, dict):
        return {
            k: REDACTED if k in SECRET_KEYS and not isinstance(v, dict) else redact_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


def record_of(request: Request, status: int, request_id: str) -> RequestRecord:
    body: Any = None
    if request.body.strip():
        try:
            body = redact_json(json.loads(request.body))
        except ValueError:
            body = None
    return RequestRecord(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=redact_headers(request.headers),
        body=body,
        status=status,
        request_id=request_id,
    )


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
