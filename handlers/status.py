"""Status for pollers (Spinnaker webhook stages, Argo): one vocabulary for backups and jobs.

``RUNNING`` until the backup or job ends, then ``SUCCEEDED`` or ``FAILED``; the API's own
object comes along for whoever wants the details.
"""

from __future__ import annotations

from typing import Any, Literal

from clients.retry import JOB_NOT_YET_VISIBLE
from clients.taurusdb import TaurusDBClient
from errors import ApiError, NotFoundError
from models import BackupStatus, JobStatus

__all__ = ["backup_status", "job_status"]

PollStatus = Literal["RUNNING", "SUCCEEDED", "FAILED"]

_BACKUP: dict[BackupStatus, PollStatus] = {
    BackupStatus.BUILDING: "RUNNING",
    BackupStatus.COMPLETED: "SUCCEEDED",
    BackupStatus.AVAILABLE: "SUCCEEDED",
    BackupStatus.FAILED: "FAILED",
}
_JOB: dict[JobStatus, PollStatus] = {
    JobStatus.RUNNING: "RUNNING",
    JobStatus.COMPLETED: "SUCCEEDED",
    JobStatus.FAILED: "FAILED",
}


def backup_status(api: TaurusDBClient, backup_id: str) -> dict[str, Any]:
    page = api.list_backups(backup_id=backup_id)
    match = [b for b in page.backups if b.id == backup_id]
    if not match:
        raise NotFoundError(f"no backup {backup_id}")
    backup = match[0]
    return {"status": _BACKUP[backup.status], "backup": backup.model_dump(mode="json")}


def job_status(api: TaurusDBClient, job_id: str) -> dict[str, Any]:
    try:
        job = api.get_job(job_id)
    except ApiError as exc:
        if exc.error_code == JOB_NOT_YET_VISIBLE:
            raise NotFoundError(
                f"no job {job_id} (a job may take a few seconds to become visible)"
            ) from None
        raise
    return {"status": _JOB[job.status], "job": job.model_dump(mode="json")}
