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

A flood cannot be turned against the user (``Guard``): a backup younger than
``RETENTION_MIN_AGE_HOURS`` is never deleted, nor the newest completed one from before the
current trigger (the restore point the deploy now running relies on), whatever else came in.

Bounded: retention needs the whole listing, so it runs only after the trigger's answer is
known (backup found or made, callbacks sent), within what is left of the event's deadline, and
reads at most ``MAX_PAGES`` pages (1,000 manual backups of the instance). An instance with more
is left alone and the report says so: retention never deletes on a partial view.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clients.retry import Deadline, is_busy, is_retryable, retrying, within
from clients.taurusdb import TaurusDBClient
from config import Settings
from errors import PredeployError
from handlers.naming import is_own
from models import BackupListItem, BackupStatus, Trigger

__all__ = ["MAX_PAGES", "Guard", "RetentionReport", "apply", "candidates", "preview"]

_log = logging.getLogger("predeploy.retention")

MAX_PAGES = 10
PAGE_SIZE = 100


class ListingTooLongError(PredeployError):
    """More manual backups than retention reads in one run: it deletes nothing."""


@dataclass(frozen=True)
class Guard:
    """What retention never deletes, whatever ``keep`` says.

    ``min_age``: backups younger than this (by the function's clock, less the skew allowance);
    ``before``: the newest candidate that began at or before this moment (the current
    trigger's send time, else when it was served) is the deploy's restore point and is kept.
    """

    min_age: timedelta
    skew: timedelta
    before: datetime
    now: datetime

    @classmethod
    def of(cls, settings: Settings, trigger: Trigger, now: datetime | None = None) -> Guard:
        now = now if now is not None else datetime.now(UTC)
        sent = trigger.sent_at
        if sent is not None and sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
        return cls(
            min_age=timedelta(hours=settings.retention_min_age_hours),
            skew=timedelta(seconds=settings.clock_skew_seconds),
            before=min(sent, now) if sent is not None else now,
            now=now,
        )

    def protected(self, found: list[BackupListItem], newest: str | None) -> set[str]:
        """Ids of ``found`` (newest first) this guard keeps."""
        young = self.now - self.min_age - self.skew  # the API's clock may run ahead
        kept = {item.id for item in found if item.begin_time > young}
        restore_point = next(
            (item for item in found if item.id != newest and item.begin_time <= self.before),
            None,
        )
        if restore_point is not None:
            kept.add(restore_point.id)
        return kept


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
        for item in _bounded(api, instance_id)
        if item.type == "manual"
        and item.instance_id == instance_id
        and item.status is BackupStatus.COMPLETED
        and is_own(item.name, item.description)
    ]
    # stable: equal begin_times keep the API's order, which is newest first
    found.sort(key=lambda item: (item.id == newest, item.begin_time), reverse=True)
    return found


def _bounded(api: TaurusDBClient, instance_id: str) -> Iterator[BackupListItem]:
    """Every manual backup of the instance, at most ``MAX_PAGES`` pages, or ``ListingTooLong``.

    The count is known from the first page, so a listing too long costs one request.
    """
    first = api.list_backups(
        instance_id=instance_id, backup_type="manual", offset=0, limit=PAGE_SIZE
    )
    limit = MAX_PAGES * PAGE_SIZE
    if first.total_count > limit:
        raise ListingTooLongError(
            f"the instance has {first.total_count} manual backups, more than the {limit} "
            "retention reads in one run: nothing deleted; delete old manual backups by hand"
        )
    yield from first.backups
    offset = len(first.backups)
    while first.backups and offset < first.total_count and offset < limit:
        page = api.list_backups(
            instance_id=instance_id, backup_type="manual", offset=offset, limit=PAGE_SIZE
        )
        if not page.backups:
            return
        yield from page.backups
        offset += len(page.backups)


def preview(
    api: TaurusDBClient, instance_id: str, keep: int, deadline: Deadline, guard: Guard
) -> RetentionReport:
    """A dry run: what retention would delete now; nothing is deleted."""
    try:
        doomed, kept = _plan(api, instance_id, keep, None, deadline, guard)
    except PredeployError as exc:
        return RetentionReport(keep=keep, error=exc.message, dry_run=True)
    return RetentionReport(keep=keep, kept=kept, deleted=doomed, dry_run=True)


def apply(
    api: TaurusDBClient,
    instance_id: str,
    keep: int,
    newest: str | None,
    deadline: Deadline,
    *,
    guard: Guard,
) -> RetentionReport:
    """Delete all but the newest ``keep`` candidates; ``newest`` (the new backup) is kept,
    and so is whatever ``guard`` protects."""
    try:
        doomed, kept = _plan(api, instance_id, keep, newest, deadline, guard)
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
        error = _delete_logged(api, instance_id, backup_id, keep, deadline)
        if error is None:
            deleted.append(backup_id)
        else:
            failed.append({"backup_id": backup_id, "error": error})
    return RetentionReport(keep=keep, kept=kept, deleted=deleted, failed=failed)


def _delete_logged(
    api: TaurusDBClient, instance_id: str, backup_id: str, keep: int, deadline: Deadline
) -> str | None:
    """Delete one backup and log it (``retention_deleted``/``retention_failed``); the error's
    message when it could not be deleted."""
    fields: dict[str, object] = {"instance_id": instance_id, "backup_id": backup_id}
    try:
        _delete(api, backup_id, deadline)
    except PredeployError as exc:
        _log.warning(
            "retention could not delete a backup: %s",
            exc.message,
            extra={"fields": {"outcome": "retention_failed", **fields}},
        )
        return exc.message
    _log.info(
        "backup deleted by retention",
        extra={"fields": {"outcome": "retention_deleted", **fields, "keep": keep}},
    )
    return None


def _plan(
    api: TaurusDBClient,
    instance_id: str,
    keep: int,
    newest: str | None,
    deadline: Deadline,
    guard: Guard,
) -> tuple[list[str], list[str]]:
    """(to delete, to keep): ids of the candidates beyond the newest ``keep`` that the guard
    does not protect, and of the kept ones (the newest ``keep`` and the protected)."""
    if keep < 1:
        raise ValueError("retention keeps at least one backup")
    for attempt in retrying(deadline):
        with attempt, within(deadline):
            found = candidates(api, instance_id, newest)
            protected = guard.protected(found, newest)
            kept = [b.id for i, b in enumerate(found) if i < keep or b.id in protected]
            return [b.id for b in found if b.id not in set(kept)], kept
    raise AssertionError("unreachable: retrying() ends by returning or raising")


def _delete(api: TaurusDBClient, backup_id: str, deadline: Deadline) -> None:
    """One deletion, retried on passing faults; a busy instance is not waited for."""
    for attempt in retrying(deadline, on=lambda exc: is_retryable(exc) and not is_busy(exc)):
        with attempt, within(deadline):
            api.delete_backup(backup_id)
            return
    raise AssertionError("unreachable: retrying() ends by returning or raising")
