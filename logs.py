"""JSON log lines with a correlation id; secrets never appear.

Every record is one JSON object on stderr: time, level, logger, message, the correlation id
of the request being served, and the record's ``fields``. A redacting filter removes any
configured secret value that reaches a message anyway (defence in depth: the code never
logs secrets on purpose).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "JsonFormatter",
    "RedactingFilter",
    "RedactingFormatter",
    "configure",
    "correlation_id",
    "redact",
]

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_LOGGER = "predeploy"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            line["correlation_id"] = cid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a formatted record with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        fields = getattr(record, "fields", None)
        text = json.dumps(fields, default=str) if isinstance(fields, dict) else ""
        if any(secret in message or secret in text for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, "[redacted]")
                text = text.replace(secret, "[redacted]")
            record.msg, record.args = message, None
            if text:
                record.fields = json.loads(text)
        return True


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (as written, and as JSON escapes it) made ``[redacted]``."""
    forms = {form for s in secrets for form in (s, json.dumps(s)[1:-1]) if len(form) >= 4}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "[redacted]")
    return text


class RedactingFormatter(logging.Formatter):
    """Redacts the finished line, so no part of it (correlation id included) carries a secret."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record), self._secrets)


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> logging.Logger:
    """Set up the ``predeploy`` logger once per process (idempotent)."""
    logger = logging.getLogger(_LOGGER)
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    secrets = tuple(secrets)
    handler.setFormatter(RedactingFormatter(JsonFormatter(), secrets))
    handler.addFilter(RedactingFilter(secrets))
    logger.addHandler(handler)
    return logger
