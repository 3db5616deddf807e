"""The look-up reads the trigger's window, not the instance's history (issue 15, item 1).

Against the emulator over real HTTP: the function lists with ``begin_time``/``end_time`` (the
list API's documented filters, research/otc-api.md §2.1), so a fresh event and its redelivery
each read one page whether the instance holds 0 or 1,000 older manual backups (counted in the
emulator's request log). A delivery older than ``IDEMPOTENCY_WINDOW_DAYS`` is refused before
anything reaches the API; clocks that disagree (the emulator's clock offset) within
``CLOCK_SKEW_SECONDS`` still find the backup; an API that ignores the filter is noticed and
every page is read.

Triggers with a signed send time (``sent_at``) are served through ``handlers.pre_deploy``
with the process's real services; the sources that sign a time fill it in themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from clients.callback import CallbackSender
from config import Settings
from emulator import Emulator, RequestRecord
from errors import InvalidEventError
from handlers.naming import backup_name_for, description_for
from handlers.pre_deploy import BackupOutcome, TriggerOutcome, handle
from handlers.services import Services
from helpers import (
    INSTANCE,
    PROJECT_ID,
    backups_on,
    creates,
    deliver,
    env_fixture,
    event,
    js,
    make_client,
)
from models import Trigger
from runtime import api_client

WEEK = timedelta(days=7)


def lookups(emu: Emulator) -> list[RequestRecord]:
    """The look-up's list requests (an instance's manual backups), in order."""
    return [
        r
        for r in emu.requests()
        if r.method == "GET" and r.path.endswith("/backups") and "instance_id" in r.query
    ]


def manual_count(emu: Emulator) -> int:
    response = httpx.get(
        f"{emu.url}/v3/{PROJECT_ID}/backups",
        params={"instance_id": INSTANCE, "backup_type": "manual", "limit": "1"},
        headers={"X-Auth-Token": emu.issue_token()},
    )
    response.raise_for_status()
    count: int = response.json()["total_count"]
    return count


def old_history(emu: Emulator, count: int) -> None:
    """``count`` COMPLETED manual backups, the newest 8 days old, one an hour before that."""
    if count:
        emu.add_backups(
            INSTANCE,
            count,
            name="nightly",
            begin_time=datetime.now(UTC) - timedelta(days=8),
            spacing_seconds=3600,
        )


env = env_fixture(DEADLINE_SECONDS="5", IDEMPOTENCY_WINDOW_DAYS="7")


@pytest.fixture
def services(env: dict[str, str]) -> Iterator[Services]:
    """What ``main.py`` builds, from the same environment."""
    settings = Settings()
    with api_client(settings) as api:
        yield Services(
            settings=settings,
            taurusdb=api,
            callbacks=CallbackSender(
                secret=settings.secrets("callback_secret"),
                allowed_hosts=settings.callback_allowed_hosts,
                timeout=settings.callback_timeout_seconds,
            ),
        )


def trigger(sent_at: datetime | None, trigger_id: str = "deploy-4711") -> Trigger:
    return Trigger(
        source="generic",
        trigger_id=trigger_id,
        key=f"generic:{trigger_id}",
        instance_id=INSTANCE,
        sent_at=sent_at,
    )


def serve(services: Services, one: Trigger) -> TriggerOutcome:
    (result,) = handle([one], services)
    return result


# --- one page per event, whatever the history -------------------------------------------------


@pytest.mark.parametrize("history", [0, 1000])
def test_a_fresh_event_and_its_redelivery_read_one_page_each(
    env: dict[str, str], emu: Emulator, history: int
) -> None:
    old_history(emu, history)
    emu.add_backups(INSTANCE, 30, name="recent", spacing_seconds=3600)  # inside the window
    client = make_client()
    emu.log.clear()

    fresh = deliver(client, event())
    assert fresh.status_code == 202, js(fresh)
    (listed,) = lookups(emu)
    begin = datetime.strptime(listed.query["begin_time"], "%Y-%m-%dT%H:%M:%S%z")
    end = datetime.strptime(listed.query["end_time"], "%Y-%m-%dT%H:%M:%S%z")
    now = datetime.now(UTC)
    # no signed send time: the whole idempotency window (and the skew allowance), no more
    assert now - WEEK - timedelta(minutes=16) < begin < now - WEEK - timedelta(minutes=14)
    assert end > now
    assert listed.query["backup_type"] == "manual" and listed.query["limit"] == "100"

    emu.log.clear()
    again = deliver(client, event())
    assert again.status_code == 200, js(again)
    assert js(again)["backup"]["id"] == js(fresh)["backup"]["id"]
    assert len(lookups(emu)) == 1
    assert creates(emu) == []
    assert manual_count(emu) == history + 30 + 1


# --- sent_at: redelivery inside the window, refusal after it -----------------------------------


def test_a_redelivery_inside_the_window_finds_the_backup(services: Services, emu: Emulator) -> None:
    sent = datetime.now(UTC) - timedelta(days=6, hours=23)
    redelivered = trigger(sent)
    old_history(emu, 1000)
    made = emu.add_backup(  # what the first delivery made, a minute after it was sent
        INSTANCE,
        backup_type="manual",
        name=backup_name_for(redelivered),
        description=description_for(redelivered),
        begin_time=sent + timedelta(minutes=1),
    )
    emu.log.clear()

    result = serve(services, redelivered)

    assert isinstance(result, BackupOutcome), result
    assert (result.backup.id, result.created, result.job_id) == (made, False, None)
    (listed,) = lookups(emu)
    begin = datetime.strptime(listed.query["begin_time"], "%Y-%m-%dT%H:%M:%S%z")
    assert begin == (sent - timedelta(seconds=900)).replace(microsecond=0)  # skew allowance
    assert creates(emu) == []


@pytest.mark.parametrize(
    ("window_days", "age"),
    [("7", timedelta(days=7, minutes=1)), ("3", timedelta(days=3, seconds=30))],
)
def test_a_delivery_after_the_window_is_refused_and_nothing_is_made(
    monkeypatch: pytest.MonkeyPatch,
    emu: Emulator,
    env: dict[str, str],
    window_days: str,
    age: timedelta,
) -> None:
    monkeypatch.setenv("IDEMPOTENCY_WINDOW_DAYS", window_days)
    settings = Settings()
    with api_client(settings) as api:
        services = Services(
            settings, api, CallbackSender(secret=settings.secrets("callback_secret"))
        )
        result = serve(services, trigger(datetime.now(UTC) - age))

    assert isinstance(result, InvalidEventError)
    assert f"more than IDEMPOTENCY_WINDOW_DAYS ({window_days}) days ago" in result.message
    assert "refused" in result.message
    assert [(e.field, e.rule) for e in result.errors] == [
        ("sent_at", f"at most {window_days} days old")
    ]
    assert emu.requests() == []  # nothing asked, nothing made
    assert backups_on(emu) == []


def test_a_send_time_slightly_ahead_is_tolerated_far_ahead_refused(
    services: Services, emu: Emulator
) -> None:
    ahead = serve(services, trigger(datetime.now(UTC) + timedelta(minutes=10)))
    assert isinstance(ahead, BackupOutcome) and ahead.created

    emu.log.clear()
    future = serve(services, trigger(datetime.now(UTC) + timedelta(hours=2), "deploy-4712"))
    assert isinstance(future, InvalidEventError)
    assert "CLOCK_SKEW_SECONDS" in future.message
    assert [e.field for e in future.errors] == ["sent_at"]
    assert emu.requests() == []


# --- clocks that disagree ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_offset", "allowance"),
    [(-600, None), (600, None), (-1500, "1800"), (86000, None)],
    ids=["api-10min-behind", "api-10min-ahead", "api-25min-behind-allowance-30min", "api-ahead-1d"],
)
def test_clock_skew_between_function_and_api_still_finds_the_backup(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    emu: Emulator,
    api_offset: int,
    allowance: str | None,
) -> None:
    if allowance is not None:
        monkeypatch.setenv("CLOCK_SKEW_SECONDS", allowance)
    emu.configure(clock_offset_seconds=api_offset, backup_seconds=30)
    settings = Settings()
    sent = datetime.now(UTC)  # the sender's clock agrees with the function's
    with api_client(settings) as api:
        services = Services(
            settings, api, CallbackSender(secret=settings.secrets("callback_secret"))
        )
        first = serve(services, trigger(sent))
        second = serve(services, trigger(sent))  # a redelivery, the backup still BUILDING

    assert isinstance(first, BackupOutcome) and first.created
    made = first.backup.begin_time
    assert abs((made - sent).total_seconds() - api_offset) < 5  # the API's clock wrote it
    assert isinstance(second, BackupOutcome), second
    assert (second.backup.id, second.created) == (first.backup.id, False)
    assert len(creates(emu)) == 1
    assert len(lookups(emu)) == 2


def test_webhook_with_the_api_an_hour_behind(env: dict[str, str], emu: Emulator) -> None:
    emu.configure(clock_offset_seconds=-3600)
    client = make_client()
    first, again = deliver(client, event()), deliver(client, event())
    assert (first.status_code, again.status_code) == (202, 200)
    assert js(again)["backup"]["id"] == js(first)["backup"]["id"]
    assert len(creates(emu)) == 1


# --- an API that ignores the filter -----------------------------------------------------------


def log_lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_an_api_that_ignores_the_filter_is_read_in_full(
    env: dict[str, str], emu: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.configure(ignore_time_filters=True)
    client = make_client()
    first = deliver(client, event())  # no backups yet: nothing outside the window to notice
    assert first.status_code == 202, js(first)
    # the function's own backup, then 250 old ones newer than it by the API's order
    emu.add_backups(INSTANCE, 250, name="nightly", begin_time=datetime.now(UTC) - 8 * WEEK)
    capfd.readouterr()
    emu.log.clear()

    again = deliver(client, event())

    assert again.status_code == 200, js(again)
    assert js(again)["backup"]["id"] == js(first)["backup"]["id"]
    listed = lookups(emu)
    assert "begin_time" in listed[0].query  # asked with the filter, got everything back
    assert all("begin_time" not in r.query for r in listed[1:])  # then every page, unfiltered
    assert len(listed) == 1 + 1  # the backup is newest: the first unfiltered page finds it
    (warning,) = [
        x for x in log_lines(capfd.readouterr().err) if x.get("outcome") == "lookup_unfiltered"
    ]
    assert warning["level"] == "WARNING"
    assert warning["total_count"] == 251
    assert creates(emu) == []


def test_an_ignored_filter_still_finds_an_old_backup_on_a_late_page(
    services: Services, emu: Emulator
) -> None:
    emu.configure(ignore_time_filters=True)
    sent = datetime.now(UTC) - timedelta(days=2)
    redelivered = trigger(sent)
    made = emu.add_backup(
        INSTANCE,
        backup_type="manual",
        name=backup_name_for(redelivered),
        description=description_for(redelivered),
        begin_time=sent,
    )
    emu.add_backups(INSTANCE, 250, name="recent", spacing_seconds=60)  # newer, in the window
    old_history(emu, 50)  # older than the window: what a filtering API would not send
    emu.log.clear()

    result = serve(services, redelivered)

    assert isinstance(result, BackupOutcome) and result.backup.id == made and not result.created
    listed = lookups(emu)
    # pages 1 and 2 hold only backups inside the window, page 3 the first one outside it:
    # the filter was ignored, so the listing starts over unfiltered and finds it on page 3
    assert ["begin_time" in r.query for r in listed] == [True] * 3 + [False] * 3
    assert [r.query["offset"] for r in listed] == ["0", "100", "200"] * 2
    assert creates(emu) == []
