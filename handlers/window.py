"""The idempotency window: which backups can belong to a trigger, which deliveries are too old.

A trigger's backup is never older than the trigger. With a signed send time (``sent_at``) the
look-up reads only the instance's manual backups that began after it (less the clock-skew
allowance ``CLOCK_SKEW_SECONDS``, since the sender's and the API's clocks differ); without one,
those of the last ``IDEMPOTENCY_WINDOW_DAYS``. The list API filters by time itself
(``begin_time``/``end_time``), so a fresh event and its redelivery each read one page however
many backups the instance holds. A delivery sent before the window is refused, never served:
its backup may exist outside what the look-up reads, and a second one must not be made. A send
time further ahead than the skew allowance is refused too: the window would start after the
backup, and a redelivery would not find it.

What the API answers is checked: an item outside the window means it ignored the filter, and
the look-up falls back to reading every page (logged), slow but right.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clients.taurusdb import TaurusDBClient
from config import Settings
from errors import FieldError, InvalidEventError
from models import BackupListItem, Trigger

__all__ = ["PAGE_SIZE", "Window", "backups_in", "window_for"]

_log = logging.getLogger("predeploy.window")

PAGE_SIZE = 100
"""The API's largest page."""

_AHEAD = timedelta(days=1)
"""How far past now the window ends: no backup is from the future, and an API clock that runs
fast must not hide the one a concurrent delivery has just made."""


@dataclass(frozen=True)
class Window:
    """``begin`` to ``end`` (whole seconds, UTC): when a trigger's backup can have begun."""

    begin: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.begin <= moment <= self.end


def window_for(trigger: Trigger, settings: Settings, now: datetime | None = None) -> Window:
    """The trigger's window; ``InvalidEventError`` when its delivery is too old or too new."""
    now = now if now is not None else datetime.now(UTC)
    days = settings.idempotency_window_days
    horizon = timedelta(days=days)
    skew = timedelta(seconds=settings.clock_skew_seconds)
    sent = trigger.sent_at
    if sent is None:
        begin = now - horizon - skew
    else:
        if sent.tzinfo is None:  # signed times are UTC unless they say otherwise
            sent = sent.replace(tzinfo=UTC)
        if sent < now - horizon:
            raise InvalidEventError(
                f"the delivery was sent at {_iso(sent)}, more than IDEMPOTENCY_WINDOW_DAYS "
                f"({days:g}) days ago: refused, so that its backup is never made twice; "
                "send a new event",
                [FieldError(field="sent_at", rule=f"at most {days:g} days old")],
            )
        if sent > now + skew:
            raise InvalidEventError(
                f"the delivery says it was sent at {_iso(sent)}, later than now "
                f"({_iso(now)}) by more than CLOCK_SKEW_SECONDS "
                f"({settings.clock_skew_seconds:g}): refused; check the sender's clock",
                [
                    FieldError(
                        field="sent_at",
                        rule=f"at most {settings.clock_skew_seconds:g} s in the future",
                    )
                ],
            )
        begin = sent - skew
    # the API's filter works in whole seconds: round outwards so it cannot cut an edge
    return Window(
        begin=begin.astimezone(UTC).replace(microsecond=0),
        end=(now + _AHEAD).astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1),
    )


def backups_in(api: TaurusDBClient, instance_id: str, window: Window) -> Iterator[BackupListItem]:
    """The instance's manual backups that began within ``window``, newest first, page by page.

    Falls back to every manual backup of the instance when the API answers with one outside
    the window (it ignored the filter); the caller's own matching keeps the answer right.
    """
    offset = 0
    while True:
        page = api.list_backups(
            instance_id=instance_id,
            backup_type="manual",
            offset=offset,
            limit=PAGE_SIZE,
            begin_time=window.begin,
            end_time=window.end,
        )
        outside = next((item for item in page.backups if not window.holds(item.begin_time)), None)
        if outside is not None:
            _log.warning(
                "the API ignored the list's time filter: reading every page",
                extra={
                    "fields": {
                        "outcome": "lookup_unfiltered",
                        "instance_id": instance_id,
                        "begin_time": _iso(window.begin),
                        "end_time": _iso(window.end),
                        "backup_begin_time": _iso(outside.begin_time),
                        "total_count": page.total_count,
                    }
                },
            )
            yield from api.iter_backups(
                instance_id=instance_id, backup_type="manual", page_size=PAGE_SIZE
            )
            return
        yield from page.backups
        offset += len(page.backups)
        if not page.backups or offset >= page.total_count:
            return


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
