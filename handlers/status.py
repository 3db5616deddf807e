"""Status for pollers (Spinnaker webhook stages, Argo): one vocabulary for backups and jobs.

``RUNNING`` until the backup or job ends, then ``SUCCEEDED`` or ``FAILED`` (``handlers.polling``:
the vocabulary of every answer about a backup); the API's own object comes along for whoever
wants the details. With ``ALLOWED_INSTANCES`` set, a backup or job of another instance is not
found, as if it did not exist (the caller learns nothing about instances it may not target; a
job that names no instance is not shown either).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from clients.retry import JOB_NOT_YET_VISIBLE
from clients.taurusdb import TaurusDBClient
from errors import ApiError, NotFoundError
from handlers import polling

__all__ = ["PATHS", "backup_status", "job_status", "route"]


def backup_status(
    api: TaurusDBClient, backup_id: str, allowed: Collection[str] = ()
) -> dict[str, Any]:
    """``allowed``: ``ALLOWED_INSTANCES`` (empty: any instance)."""
    page = api.list_backups(backup_id=backup_id)
    match = [b for b in page.backups if b.id == backup_id and _visible(b.instance_id, allowed)]
    if not match:
        raise NotFoundError(f"no backup {backup_id}")
    backup = match[0]
    return {"status": polling.of_backup(backup.status), "backup": backup.model_dump(mode="json")}


def job_status(api: TaurusDBClient, job_id: str, allowed: Collection[str] = ()) -> dict[str, Any]:
    """``allowed``: ``ALLOWED_INSTANCES`` (empty: any instance)."""
    try:
        job = api.get_job(job_id)
    except ApiError as exc:
        if exc.error_code == JOB_NOT_YET_VISIBLE:
            raise NotFoundError(
                f"no job {job_id} (a job may take a few seconds to become visible)"
            ) from None
        raise
    if not _visible(job.instance.id if job.instance is not None else None, allowed):
        raise NotFoundError(f"no job {job_id}")
    return {"status": polling.of_job(job.status), "job": job.model_dump(mode="json")}


def _visible(instance_id: str | None, allowed: Collection[str]) -> bool:
    return not allowed or instance_id in allowed


Lookup = Callable[[TaurusDBClient, str | None, Collection[str]], dict[str, Any]]
"""A status look-up bound to its id: the API client, ``PUBLIC_URL`` and ``ALLOWED_INSTANCES``
in, the body out."""

PATHS = "GET /healthz, /readyz, /backups/{id} or /jobs/{id}"


def route(path: str) -> Lookup | None:
    """The look-up a status path asks for (``backups/{id}``, ``jobs/{id}``), else ``None``.

    Its body carries ``status_url``, the path itself (absolute with ``PUBLIC_URL``).
    """
    parts = path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in _LOOKUPS or not parts[1]:
        return None
    kind, ident = parts
    lookup = _LOOKUPS[kind]

    def bound(
        api: TaurusDBClient, public_url: str | None, allowed: Collection[str]
    ) -> dict[str, Any]:
        body = lookup(api, ident, allowed)
        body["status_url"] = polling.status_url(public_url, ident, kind)
        return body

    return bound


_LOOKUPS = {"backups": backup_status, "jobs": job_status}
