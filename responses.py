"""The function's answers, shaped from outcomes, and the one outcome log line per trigger.

Handlers return outcomes (``handlers.records.RecordOutcome``); this module turns them into an
``Answer`` (status, JSON body, headers) and writes each trigger's outcome line (logs.EventLog)
as it does: a single trigger is answered with its own body, a batch or a queue delivery with
``{"results": [...]}`` and one status for all. Failures answer what they know (errors.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import flask

import logs
from errors import PredeployError
from events.base import Record
from handlers import polling
from handlers.pre_deploy import BackupOutcome, DryRunOutcome
from handlers.records import RecordOutcome
from models import Note, Trigger

__all__ = [
    "Answer",
    "of_delivery",
    "of_failure",
    "of_internal_error",
    "to_flask",
]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, JSON body, headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Result:
    """One record's entry in ``{"results": [...]}`` and what it means for the whole answer."""

    body: dict[str, Any]
    http_status: int
    poll: polling.PollStatus | None = None  # a trigger's backup status (FAILED when it failed)
    wait: int | None = None  # a redelivery can cure it: after this many seconds


def of_failure(exc: PredeployError, event_log: logs.EventLog, *, acknowledge: bool) -> Answer:
    """A request that failed as a whole; ``acknowledge``: answered 200 with the failure as its
    one record (Pub/Sub push redelivers a 4xx until the message expires)."""
    status, body, headers = exc.answer()
    event_log.failed(body["error"], status, exc.message, error_code=body.get("error_code"))
    if acknowledge:
        failed = {"record": 0, "outcome": "failed", "http_status": status, "retry": False}
        return Answer(200, {"results": [failed | body]})
    return Answer(status, body, headers)


def of_internal_error(exc: Exception, event_log: logs.EventLog) -> Answer:
    """A bug: the log line names the exception, the caller learns no more."""
    name = type(exc).__name__
    event_log.failed("internal_error", 500, f"unexpected {name}", exception=name)
    message = "unexpected error; the function's log has the details"
    return Answer(500, {"error": "internal_error", "message": message})


def of_delivery(
    records: Sequence[Record],
    outcomes: Sequence[RecordOutcome],
    event_log: logs.EventLog,
    *,
    listed: bool,
    queue: bool,
    public_url: str | None,
) -> Answer:
    """One trigger's own answer, or (``listed``: a batch, a queue, several records) the list."""
    if listed or len(outcomes) != 1:
        return _of_records(records, outcomes, event_log, queue=queue, public_url=public_url)
    record, outcome = records[0], outcomes[0]
    if isinstance(record, Trigger):
        event_log.note(trigger_id=record.trigger_id, instance_id=record.instance_id)
    if isinstance(outcome, PredeployError):
        raise outcome
    if isinstance(outcome, Note):
        event_log.handled(outcome.status, 200)
        return Answer(200, _of_note(outcome))
    if isinstance(outcome, DryRunOutcome):
        return _of_dry_run(outcome, event_log)
    return _of_backup(outcome, event_log, public_url)


def _of_records(
    sent: Sequence[Record],
    outcomes: Sequence[RecordOutcome],
    event_log: logs.EventLog,
    *,
    queue: bool,
    public_url: str | None,
) -> Answer:
    """Every record's outcome, and one status for the whole delivery.

    A queue redelivers whatever is not acknowledged: non-2xx (the first curable failure's
    status) only when a redelivery can succeed. A webhook caller (a pipeline) may look at the
    status alone: any record that did not end well makes it non-2xx (the first such record's
    status), so no deploy goes ahead with an instance left without its backup; a repeated
    delivery then finds the backups that were made and makes only the missing ones.
    """
    results = [
        _of_record(index, record, outcome, event_log, public_url, queue=queue)
        for index, (record, outcome) in enumerate(zip(sent, outcomes, strict=True))
    ]
    codes = [result.http_status for result in results]
    waits = [result.wait for result in results if result.wait is not None]
    if queue:
        curable = [result.http_status for result in results if result.wait is not None]
        status = curable[0] if curable else 200
    else:
        failed = [code for code in codes if code >= 400]
        status = failed[0] if failed else (202 if 202 in codes else 200)
    body: dict[str, Any] = {"results": [result.body for result in results]}
    overall = polling.worst(result.poll for result in results if result.poll is not None)
    if overall is not None:  # about backups: the worst of them (records carry their own)
        body = {"status": overall, **body}
    return Answer(status, body, {"Retry-After": str(max(waits))} if waits else {})


def _of_record(
    index: int,
    record: Record,
    outcome: RecordOutcome,
    event_log: logs.EventLog,
    public_url: str | None,
    *,
    queue: bool,
) -> _Result:
    if isinstance(outcome, DryRunOutcome):
        answer = _of_dry_run(outcome, event_log)
        entry = {"record": index, "outcome": "dry_run", "http_status": answer.status}
        return _Result(entry | answer.body, answer.status)
    if isinstance(outcome, BackupOutcome):
        answer = _of_backup(outcome, event_log, public_url)
        kind = "started" if outcome.created else "exists"
        entry = {"record": index, "outcome": kind, "http_status": answer.status}
        return _Result(entry | answer.body, answer.status, poll=answer.body["status"])
    if isinstance(outcome, Note):
        event_log.handled(outcome.status, 200)
        return _Result({"record": index, **_of_note(outcome)}, 200)
    code, body, headers = outcome.answer()
    if isinstance(record, Trigger):  # which instance of the event failed
        body.update(instance_id=record.instance_id, trigger_id=record.trigger_id)
        event_log.note(trigger_id=record.trigger_id, instance_id=record.instance_id)
    curable = outcome.redelivery_helps
    for_good = queue and not curable and isinstance(record, Trigger)  # acknowledged
    event_log.failed(
        body["error"],
        code,
        outcome.message,
        for_good=for_good,
        error_code=body.get("error_code"),
        record=index,
        retry=curable,
    )
    entry = {"record": index, "outcome": "failed", "http_status": code, "retry": curable}
    wait = math.ceil(float(headers.get("Retry-After", "30"))) if curable else None
    return _Result(
        entry | body, code, poll="FAILED" if isinstance(record, Trigger) else None, wait=wait
    )


def _of_note(note: Note) -> dict[str, Any]:
    """A record that asks for no backup: ``note`` (``ignored``, ``pong``, ...), never ``status``
    (which is only ever a backup's ``RUNNING``/``SUCCEEDED``/``FAILED``)."""
    return {"note": note.status, "message": note.message}


def _of_backup(outcome: BackupOutcome, event_log: logs.EventLog, public_url: str | None) -> Answer:
    """202 for a new backup, 200 for one that existed; after waiting, by how it ended.

    ``status`` and ``status_url`` are the polling contract (handlers/polling.py); a 202 also
    points at the status with ``Location``. Writes the trigger's outcome line.
    """
    url = polling.status_url(public_url, outcome.backup.id)
    body: dict[str, Any] = {
        "status": polling.of_final(outcome.final, outcome.backup.status),
        "status_url": url,
        "job_id": outcome.job_id,
        "backup": outcome.backup.model_dump(mode="json"),
        "instance_id": outcome.trigger.instance_id,
        "trigger_id": outcome.trigger.trigger_id,
        "created": outcome.created,
    }
    if outcome.callbacks:  # whether, never how: the receiver's status and error are logged
        body["callbacks"] = {
            kind: {"delivered": d.delivered} for kind, d in outcome.callbacks.items()
        }
    if outcome.retention is not None:
        body["retention"] = outcome.retention.as_json()
    status = 202 if outcome.created else 200
    headers: dict[str, str] = {}
    if outcome.final == "SUCCEEDED":
        status = 200
    elif outcome.final == "FAILED":
        status = 502
        body.update(error="backup_failed", message="the backup ended FAILED")
    elif outcome.final is not None:
        status = 504
        body.update(error="backup_timed_out", message="the backup did not end in time")
        headers["Retry-After"] = "30"
    if status == 202:
        headers["Location"] = url
    _log_backup(event_log, outcome, status)
    return Answer(status, body, headers)


def _log_backup(event_log: logs.EventLog, outcome: BackupOutcome, status: int) -> None:
    started = outcome.callbacks.get("backup.started")
    event_log.note(trigger_id=outcome.trigger.trigger_id, instance_id=outcome.trigger.instance_id)
    event_log.handled(
        outcome.name,
        status,
        backup_id=outcome.backup.id,
        backup_name=outcome.backup.name,
        job_id=outcome.job_id,
        callback=None if started is None else started.delivered,
    )


def _of_dry_run(outcome: DryRunOutcome, event_log: logs.EventLog) -> Answer:
    """200: what a real run would do; nothing was created, deleted or called back."""
    existing = outcome.existing
    body: dict[str, Any] = {
        "dry_run": True,
        "instance_id": outcome.trigger.instance_id,
        "trigger_id": outcome.trigger.trigger_id,
        "instance_status": outcome.instance.status,
        "backup_name": outcome.request.name,
        "backup_description": outcome.request.description,
        "existing_backup": existing.model_dump(mode="json") if existing is not None else None,
    }
    if outcome.retention is not None:
        body["retention"] = outcome.retention.as_json()
    event_log.note(trigger_id=outcome.trigger.trigger_id, instance_id=outcome.trigger.instance_id)
    event_log.handled(
        "dry_run",
        200,
        backup_id=existing.id if existing is not None else None,
        backup_name=outcome.request.name,
        instance_status=outcome.instance.status,
    )
    return Answer(200, body)


def to_flask(answer: Answer, redact: Callable[[str], str]) -> flask.Response:
    """The HTTP response; ``redact``: belt and braces, no configured secret leaves in one."""
    payload = redact(json.dumps(answer.body))
    # No Connection header here: whether a connection stays open is the server's call (a
    # hop-by-hop header from the app is an error under waitress, ignored by gunicorn). Under
    # server.py (the image, the zip) the server reads the whole body, at most MAX_BODY_BYTES,
    # before the app runs and answers a larger one itself, with "Connection: close".
    results = answer.body.get("results") or [{}]
    if answer.status == 413 or results[0].get("http_status") == 413:  # also when acknowledged
        # functions-framework reads whatever is left of the request after a response that is
        # not streamed; for a body over the limit that would undo the limit. Streamed, it
        # leaves the rest unread, and gunicorn (functions-framework's own server, for local
        # use) drains it within bounds or closes the connection.
        return flask.Response(
            iter([payload]),
            status=answer.status,
            headers=answer.headers,
            mimetype="application/json",
        )
    return flask.Response(
        payload, status=answer.status, headers=answer.headers, mimetype="application/json"
    )
