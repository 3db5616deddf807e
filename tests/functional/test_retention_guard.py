"""Retention cannot be driven by a flood (issue 10, item 2), and its listing is bounded.

A flood of triggers, whether replays that slipped through as new triggers or a burst of
genuine deploys, each make a backup and each run retention. Two rules keep the backup a deploy
relies on: nothing younger than ``RETENTION_MIN_AGE_HOURS`` (default 24) is deleted, and the
newest COMPLETED backup from before the current trigger (its restore point) is never deleted.
Against the emulator over real HTTP, counted in its request log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulator import Emulator
from helpers import INSTANCE, PROJECT_ID, SetEnv, deliver, event, js, make_client

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def env(emu: Emulator, set_env: SetEnv) -> dict[str, str]:
    emu.configure(backup_seconds=0.1)
    return set_env(
        DEADLINE_SECONDS="5",
        POLL_INTERVAL_SECONDS="0.05",
        WAIT_FOR_COMPLETION="true",
        RETENTION_KEEP="1",  # the most a flood could ever delete
    )


def ours(emu: Emulator, age: timedelta, number: int) -> str:
    """A backup as this function makes them (name prefix and marker), ``age`` old."""
    return emu.add_backup(
        INSTANCE,
        backup_type="manual",
        name=f"predeploy-old-{number}-0123456789ab",
        description=f"Pre-deploy backup, generic trigger old-{number} [pd:{number:016x}]",
        begin_time=NOW - age,
    )


def deleted(emu: Emulator) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in emu.requests() if r.method == "DELETE"]


def listed_ids(emu: Emulator) -> set[str]:
    """Ids of every manual backup of the instance, page by page over HTTP."""
    token, ids, offset = emu.issue_token(), set(), 0
    while True:
        response = httpx.get(
            f"{emu.url}/v3/{PROJECT_ID}/backups",
            params={"instance_id": INSTANCE, "backup_type": "manual", "offset": str(offset)},
            headers={"X-Auth-Token": token},
        )
        response.raise_for_status()
        page = response.json()
        ids |= {b["id"] for b in page["backups"]}
        offset += len(page["backups"])
        if not page["backups"] or offset >= page["total_count"]:
            return ids


@pytest.mark.parametrize("flood", ["replays", "burst"])
def test_a_flood_within_the_guard_age_cannot_delete_the_deploys_backup(
    env: dict[str, str], emu: Emulator, flood: str
) -> None:
    stale = [ours(emu, timedelta(days=days), days) for days in (2, 3, 4)]
    client = make_client()
    deploy = deliver(client, event(id="release-42"))
    assert deploy.status_code == 200, js(deploy)
    relied_on = js(deploy)["backup"]["id"]
    # keep 1: the new one; the newest from before it (2 days old) is its restore point
    assert js(deploy)["retention"]["kept"] == [relied_on, stale[0]]
    assert js(deploy)["retention"]["deleted"] == stale[1:]

    made = []
    for number in range(6):
        # replays: one captured body sent again as new triggers; a burst: real new deploys
        trigger_id = f"release-42-replay-{number}" if flood == "replays" else f"rel-{43 + number}"
        response = deliver(client, event(id=trigger_id))
        assert response.status_code == 200, js(response)
        made.append(js(response)["backup"]["id"])

    assert relied_on in listed_ids(emu)
    assert set(made) <= listed_ids(emu)  # all younger than 24 h: none deleted either
    # only what was older than the guard age and not a restore point ever went
    assert deleted(emu) == [*stale[1:], stale[0]]


def test_the_restore_point_survives_even_without_a_guard_age(
    env: dict[str, str], emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETENTION_MIN_AGE_HOURS", "0")
    monkeypatch.setenv("CLOCK_SKEW_SECONDS", "0")
    client = make_client()
    first = js(deliver(client, event(id="release-1")))["backup"]["id"]
    response = deliver(client, event(id="release-2"))

    second = js(response)["backup"]["id"]
    assert js(response)["retention"] == {"keep": 1, "kept": [second, first], "deleted": []}
    assert deleted(emu) == []

    third = deliver(client, event(id="release-3"))  # now the first is neither kept nor guarded
    assert js(third)["retention"]["deleted"] == [first]
    assert listed_ids(emu) == {second, js(third)["backup"]["id"]}


def test_retention_reads_a_bounded_listing(env: dict[str, str], emu: Emulator) -> None:
    # 1,000 manual backups that are not ours (say, a team's nightly exports), a month old
    emu.add_backups(INSTANCE, 1000, name="nightly", begin_time=NOW - timedelta(days=30))
    client = make_client()
    emu.log.clear()

    response = deliver(client, event(id="release-1"))

    assert response.status_code == 200, js(response)
    report = js(response)["retention"]
    assert "1001 manual backups, more than the 1000" in report["error"]
    assert report["deleted"] == []
    assert deleted(emu) == []
    unfiltered = [
        r
        for r in emu.requests()
        if r.path.endswith("/backups") and "instance_id" in r.query and "begin_time" not in r.query
    ]
    assert len(unfiltered) == 1  # retention's count told it at once: one request, not 11
