"""JSON log lines with a correlation id, one outcome line per event; secrets never appear.

Every record is one JSON object on stderr: time, level, logger, message, the correlation and
trace ids of the request being served, and the record's ``fields``. The formatter redacts
every configured secret value from the finished line (defence in depth: the code never logs
secrets on purpose), and so do the answers. So are credentials seen on the wire
(``remember_credential``: the IAM token the function received) and whatever looks like one
(a bearer token, an ``X-Auth-Token``/``X-Subject-Token`` value, an IAM PKI token, an AK/SK
signature), even when an upstream message quotes it.

``EventLog`` writes the one line per event outcome that operators search for: what came in
(source, trigger id, instance), what happened (outcome, status, backup id, job id) and how long
it took.

Under functions-framework's ``LOG_EXECUTION_ID=true`` the framework configures the root logger
before it imports ``main.py`` (so ``basicConfig`` is a no-op and INFO records of loggers that
propagate to the root vanish), disables loggers that already exist, and swaps ``sys.stderr``
for a wrapper while it serves a request. The ``predeploy`` logger therefore has its own level
and handler, does not propagate, is re-enabled by ``configure``, and writes each line to the
``sys.stderr`` of the moment: inside a request that is the wrapper, which keeps our JSON object
and adds the framework's ``execution_id`` label to it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

__all__ = [
    "EventLog",
    "JsonFormatter",
    "RedactingFormatter",
    "Redactor",
    "configure",
    "correlation_id",
    "remember_credential",
    "request_ids",
    "scrub",
    "trace_id",
]

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)

_LOGGER = "predeploy"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Where a request's id comes from, most specific first: FunctionGraph's request id (the
# framework does not know it), then the execution id (Cloud Run functions sets it; elsewhere
# functions-framework invents one and uses it as its own execution_id label).
_CORRELATION_HEADERS = (
    "X-CFF-Request-Id",
    # GitHub's and GitLab's delivery ids: no signature covers them, so they never key anything,
    # but they find the delivery in the sender's own log (before functions-framework's
    # execution id, which it makes up when the platform sent none).
    "X-GitHub-Delivery",
    "X-Gitlab-Event-UUID",
    "Function-Execution-Id",
    "X-Request-Id",
)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/\d+)?(?:;o=[01])?$")
_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: safe to log and search


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "severity": record.levelname,  # the key Cloud Logging reads the level from
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            line["correlation_id"] = cid
        tid = trace_id.get()
        if tid:
            line["trace_id"] = tid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            keep_nulls = getattr(record, "complete", False)  # outcome lines: every key, always
            line.update({k: v for k, v in fields.items() if v is not None or keep_nulls})
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, default=str)


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when the record is emitted, one write per line.

    functions-framework replaces ``sys.stderr`` during a request when ``LOG_EXECUTION_ID`` is
    on; a stream captured once would keep a stale wrapper (or miss it).
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock (Handler.handle holds it)
        super().emit(record)


REDACTED = "[redacted]"

# What a credential looks like wherever it is quoted: the value after a bearer scheme or a
# token header's name, an IAM PKI token (base64 of DER, "MII…"), the parts of an AK/SK
# Authorization header. The name stays, so a reader still sees what was there.
_LOOKS_SECRET = re.compile(
    r"(?i)(\bbearer\s+|\bx-(?:auth|subject|security)-token\W{0,4}|"
    r"\b(?:signature|access)\s*=\s*)[A-Za-z0-9._~+/=-]{6,}"
    r"|\bMII[A-Za-z0-9+/=_-]{20,}"
)

_wire_lock = threading.Lock()
_wire: tuple[str, ...] = ()  # credentials seen on the wire, every form, newest first
_WIRE_KEPT = 16  # a token lives a day: this is weeks of them


def _forms(secret: str) -> set[str]:
    """The secret as written and as JSON escapes it; too short to be one: nothing."""
    return {form for form in (secret, json.dumps(secret)[1:-1]) if len(form) >= 4}


def remember_credential(value: str) -> None:
    """A credential met at run time (the IAM token): every log line and answer redacts it."""
    global _wire
    forms = _forms(value)
    if not forms:
        return
    with _wire_lock:
        if forms.issubset(_wire):
            return
        _wire = (*sorted(forms, key=len, reverse=True), *_wire)[: 2 * _WIRE_KEPT]


def scrub(text: str, also: Iterable[str] = ()) -> str:
    """``text`` without credentials seen on the wire, ``also`` or anything that looks like one."""
    for form in sorted(
        {f for value in also if value for f in _forms(value)}, key=len, reverse=True
    ):
        text = text.replace(form, REDACTED)
    for form in _wire:
        if form in text:
            text = text.replace(form, REDACTED)
    return _LOOKS_SECRET.sub(lambda m: (m.group(1) or "") + REDACTED, text)


class Redactor:
    """Makes every configured secret ``[redacted]`` in a text, as written and as JSON escapes it,
    and every credential ``scrub`` knows of.

    The forms of the configured secrets are worked out once, not for every line or response.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for s in secrets for form in _forms(s)}
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return scrub(text)


class RedactingFormatter(logging.Formatter):
    """Redacts the finished line, so no part of it (correlation id included) carries a secret."""

    def __init__(self, inner: logging.Formatter, redact: Redactor) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


def configure(level: str | None = None, secrets: Iterable[str] = ()) -> logging.Logger:
    """Set up the ``predeploy`` logger (idempotent); ``level`` defaults to ``LOG_LEVEL``.

    An unknown level falls back to INFO here; the settings report it as a configuration error.
    """
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
    logger = logging.getLogger(_LOGGER)
    logger.setLevel(name if name in _LEVELS else "INFO")
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = _CurrentStderrHandler()
    handler.setFormatter(RedactingFormatter(JsonFormatter(), Redactor(secrets)))
    logger.addHandler(handler)
    # logging.config.dictConfig (run by functions-framework for LOG_EXECUTION_ID) disables
    # every logger that exists at that moment, ours included when main.py is loaded again.
    for existing in [logger, *_children(logger.name)]:
        existing.disabled = False
    return logger


def _children(name: str) -> list[logging.Logger]:
    prefix = name + "."
    return [
        item
        for key, item in list(logging.root.manager.loggerDict.items())
        if key.startswith(prefix) and isinstance(item, logging.Logger)
    ]


def request_ids(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The request's correlation id and trace id, from whichever headers the platform set.

    Trace ids come from W3C ``traceparent`` or ``X-Cloud-Trace-Context``; values that do not
    look like ids are ignored rather than logged.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    cid = None
    for header in _CORRELATION_HEADERS:
        value = lowered.get(header.lower(), "").strip()
        if _ID.match(value):
            cid = value
            break
    tid = None
    found = _TRACEPARENT.match(lowered.get("traceparent", "").strip().lower())
    if found is None:
        found = _CLOUD_TRACE.match(lowered.get("x-cloud-trace-context", "").strip())
    if found is not None:
        tid = found.group(1).lower()
    return cid, tid


class EventLog:
    """The outcome line(s) of one event: one per trigger handled, or one for the failure.

    Used as a context manager around the serving of one request: it sets the correlation and
    trace ids for every record logged meanwhile, and times the event. ``note`` records what is
    known so far (the source, then the trigger); ``handled`` and ``failed`` write the line.
    """

    def __init__(self, headers: Mapping[str, str], entry_point: str) -> None:
        self._ids = request_ids(headers)
        self._entry_point = entry_point
        self._started = time.monotonic()
        self._source: str | None = None
        self._trigger: dict[str, Any] = {}
        self._tokens: tuple[contextvars.Token[str | None], ...] = ()
        self._log = logging.getLogger(_LOGGER + ".event")

    def __enter__(self) -> EventLog:
        cid, tid = self._ids
        self._tokens = (correlation_id.set(cid), trace_id.set(tid))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cid_token, tid_token = self._tokens
        trace_id.reset(tid_token)
        correlation_id.reset(cid_token)

    def note(
        self,
        *,
        source: str | None = None,
        trigger_id: str | None = None,
        instance_id: str | None = None,
    ) -> None:
        """What is known about the event so far; the next outcome line carries it."""
        if source is not None:
            self._source = source
        if trigger_id is not None:
            self._trigger["trigger_id"] = trigger_id
        if instance_id is not None:
            self._trigger["instance_id"] = instance_id

    def handled(self, outcome: str, status: int, **fields: Any) -> None:
        """One trigger done (e.g. ``backup_started`` with its backup and job id); a backup that
        ended ``FAILED`` or did not end in time (5xx) is logged as an error."""
        level = logging.ERROR if status >= 500 else logging.INFO
        self._write(level, "event handled", outcome, status, fields)
        self._trigger = {}

    def failed(
        self, outcome: str, status: int, reason: str, *, for_good: bool = False, **fields: Any
    ) -> None:
        """The event was refused (4xx) or could not be served (5xx). ``for_good``: a queue's
        trigger that is acknowledged all the same (a redelivery cannot cure it), so no
        backup will ever come of it: an error, whatever its status."""
        level = logging.ERROR if status >= 500 or for_good else logging.WARNING
        message = "event failed" if status >= 500 else "event refused"
        if for_good:
            message, fields = "trigger failed for good", {"acknowledged": True, **fields}
        self._write(level, message, outcome, status, {"reason": reason, **fields})

    def _write(
        self, level: int, message: str, outcome: str, status: int, fields: dict[str, Any]
    ) -> None:
        line = {
            "entry_point": self._entry_point,
            "outcome": outcome,
            "status": status,
            "source": self._source,
            "trigger_id": None,
            "instance_id": None,
            "backup_id": None,
            "job_id": None,
            **self._trigger,
            **{k: v for k, v in fields.items() if v is not None},  # extras only when known
            "duration_ms": round((time.monotonic() - self._started) * 1000, 1),
        }
        self._log.log(level, message, extra={"fields": line, "complete": True})
