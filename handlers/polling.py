"""The polling contract: one ``status`` vocabulary and a ``status_url`` in every answer about a
backup, so a pipeline can wait without our client (Spinnaker, Azure checks, curl loops).

``status`` is ``RUNNING`` until the backup ends, then ``SUCCEEDED`` or ``FAILED``; several
backups report the worst. ``status_url`` is ``backups/{id}`` on the function: absolute when
``PUBLIC_URL`` says where the function is (never from request headers a client controls),
else relative to the URL the event was posted to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote

from models import BackupStatus, JobStatus

__all__ = ["PollStatus", "of_backup", "of_final", "of_job", "status_url", "worst"]

PollStatus = Literal["RUNNING", "SUCCEEDED", "FAILED"]

_OF_BACKUP: dict[BackupStatus, PollStatus] = {
    BackupStatus.BUILDING: "RUNNING",
    BackupStatus.COMPLETED: "SUCCEEDED",
    BackupStatus.AVAILABLE: "SUCCEEDED",
    BackupStatus.FAILED: "FAILED",
}
_OF_JOB: dict[JobStatus, PollStatus] = {
    JobStatus.RUNNING: "RUNNING",
    JobStatus.COMPLETED: "SUCCEEDED",
    JobStatus.FAILED: "FAILED",
}
_RANK: dict[PollStatus, int] = {"SUCCEEDED": 0, "RUNNING": 1, "FAILED": 2}


def of_backup(status: BackupStatus) -> PollStatus:
    return _OF_BACKUP[status]


def of_job(status: JobStatus) -> PollStatus:
    return _OF_JOB[status]


def of_final(final: str | None, backup_status: BackupStatus) -> PollStatus:
    """After waiting: how it ended (a wait that timed out leaves the backup ``RUNNING``)."""
    if final == "SUCCEEDED":
        return "SUCCEEDED"
    if final == "FAILED":
        return "FAILED"
    return of_backup(backup_status)


def worst(statuses: Iterable[PollStatus]) -> PollStatus | None:
    ranked = sorted(statuses, key=_RANK.__getitem__)
    return ranked[-1] if ranked else None


def status_url(public_url: str | None, ident: str, kind: str = "backups") -> str:
    """Where the status of backup ``ident`` (or of job ``ident``, ``kind="jobs"``) is."""
    return f"{public_url or ''}{kind}/{quote(ident, safe='')}"
