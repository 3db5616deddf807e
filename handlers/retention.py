"""Retention: keep the newest ``RETENTION_KEEP`` pre-deploy backups of an instance, delete the rest.

Only this function's own backups are ever candidates: manual backups of the instance whose
name starts with ``NAME_PREFIX`` *and* whose description ends with a ``[pd:<16 hex>]`` marker
(``naming.is_own``), and only ``COMPLETED`` ones. Automated backups, other manual backups (a
sender-named one included), backups still ``BUILDING`` or ``FAILED`` and other instances'
backups are never touched, and never counted.

The kept ones are the newest ``keep`` candidates by ``begin_time``; the backup just made by
this trigger, once ``COMPLETED``, is always among them. The whole listing is read before
anything is deleted, so a listing that fails deletes nothing. A deletion that fails is logged
and reported, never raised: the backup was made, and the next event will try again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from clients.retry import Deadline, is_busy, is_retryable, retrying, within
from clients.taurusdb import TaurusDBClient
from errors import PredeployError
from handlers.naming import is_own
from models import BackupListItem, BackupStatus

__all__ = ["RetentionReport", "apply", "candidates", "preview"]

_log = logging.getLogger("predeploy.retention")


@dataclass(frozen=True)
class RetentionReport:
    """What retention kept and deleted (or, in a dry run, would delete) of one instance."""

    keep: int
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"keep": self.keep, "kept": self.kept}
        body["would_delete" if self.dry_run else "deleted"] = self.deleted
        if self.failed:
            body["failed"] = self.failed
        if self.error is not None:
            body["error"] = self.error
        return body


def candidates(
    api: TaurusDBClient, instance_id: str, newest: str | None = None
) -> list[BackupListItem]:
    """This function's COMPLETED backups of the instance, newest first (``newest`` leads)."""
    found = [
        item
        for item in api.iter_backups(instance_id=instance_id, backup_type="manual")
        if item.type == "manual"
        and item.instance_id == instance_id
        and item.status is BackupStatus.COMPLETED
        and is_own(item.name, item.description)
    ]
    # stable: equal begin_times keep the API's order, which is newest first
    found.sort(key=lambda item: (item.id == newest, item.begin_time), reverse=True)
    return found


def preview(
    api: TaurusDBClient, instance_id: str, keep: int, deadline: Deadline
) -> RetentionReport:
    """A dry run: what retention would delete now; nothing is deleted."""
    try:
        doomed, kept = _plan(api, instance_id, keep, None, deadline)
    except PredeployError as exc:
        return RetentionReport(keep=keep, error=exc.message, dry_run=True)
    return RetentionReport(keep=keep, kept=kept, deleted=doomed, dry_run=True)


def apply(
    api: TaurusDBClient, instance_id: str, keep: int, newest: str | None, deadline: Deadline
) -> RetentionReport:
    """Delete all but the newest ``keep`` candidates; ``newest`` (the new backup) is kept."""
    try:
        doomed, kept = _plan(api, instance_id, keep, newest, deadline)
    except PredeployError as exc:
        _log.warning(
            "retention skipped: %s",
            exc.message,
            extra={"fields": {"outcome": "retention_failed", "instance_id": instance_id}},
        )
        return RetentionReport(keep=keep, error=exc.message)
    deleted: list[str] = []
    failed: list[dict[str, str]] = []
    for backup_id in doomed:
        try:
            _delete(api, backup_id, deadline)
        except PredeployError as exc:
            failed.append({"backup_id": backup_id, "error": exc.message})
            _log.warning(
                "retention could not delete a backup: %s",
                exc.message,
                extra={
                    "fields": {
                        "outcome": "retention_failed",
                        "instance_id": instance_id,
                        "backup_id": backup_id,
                    }
                },
            )
            continue
        deleted.append(backup_id)
        _log.info(
            "backup deleted by retention",
            extra={
                "fields": {
                    "outcome": "retention_deleted",
                    "instance_id": instance_id,
                    "backup_id": backup_id,
                    "keep": keep,
                }
            },
        )
    return RetentionReport(keep=keep, kept=kept, deleted=deleted, failed=failed)


def _plan(
    api: TaurusDBClient, instance_id: str, keep: int, newest: str | None, deadline: Deadline
) -> tuple[list[str], list[str]]:
    """(to delete, to keep): ids of the candidates beyond the newest ``keep``, and of those."""
    if keep < 1:
        raise ValueError("retention keeps at least one backup")
    for attempt in retrying(deadline):
        with attempt, within(deadline):
            found = candidates(api, instance_id, newest)
            return [b.id for b in found[keep:]], [b.id for b in found[:keep]]
    raise AssertionError("unreachable: retrying() ends by returning or raising")


def _delete(api: TaurusDBClient, backup_id: str, deadline: Deadline) -> None:
    """One deletion, retried on passing faults; a busy instance is not waited for."""
    for attempt in retrying(deadline, on=lambda exc: is_retryable(exc) and not is_busy(exc)):
        with attempt, within(deadline):
            api.delete_backup(backup_id)
            return
    raise AssertionError("unreachable: retrying() ends by returning or raising")
