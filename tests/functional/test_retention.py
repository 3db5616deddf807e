"""Retention against the emulator: exactly this function's older backups go, nothing else ever.

Every test seeds the instance with what must survive: automated backups, other manual backups
(one merely named ``predeploy-…``, one with a marker but another name), a FAILED backup of
ours and our backups on another instance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulator import Emulator
from helpers import (
    INSTANCE,
    PROJECT_ID,
    backups_on,
    deliver,
    env_fixture,
    event,
    js,
    make_client,
)

OTHER = "00000000000000000000000000000001in07"
NOW = datetime.now(UTC).replace(microsecond=0)


env = env_fixture(DEADLINE_SECONDS="3", POLL_INTERVAL_SECONDS="0.05", RETENTION_KEEP="2")


def every_backup(emu: Emulator, instance_id: str = INSTANCE) -> set[str]:
    """Ids of all the instance's backups, automated ones included."""
    response = httpx.get(
        f"{emu.url}/v3/{PROJECT_ID}/backups",
        params={"instance_id": instance_id},
        headers={"X-Auth-Token": emu.issue_token()},
    )
    response.raise_for_status()
    return {b["id"] for b in response.json()["backups"]}


def deletes(emu: Emulator) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in emu.requests() if r.method == "DELETE"]


def ours(
    emu: Emulator, age_days: float, instance_id: str = INSTANCE, status: str = "COMPLETED"
) -> str:
    """A backup as this function makes them: the name prefix and the marker."""
    number = int(abs(age_days) * 1000) + (7 if age_days < 0 else 0)
    return emu.add_backup(
        instance_id,
        backup_type="manual",
        name=f"predeploy-deploy-{number}-0123456789ab",
        description=f"Pre-deploy backup, generic trigger deploy-{number} [pd:{number:016x}]",
        status=status,
        begin_time=NOW - timedelta(days=age_days),
    )


@dataclass
class Seeded:
    untouchable: set[str]  # on INSTANCE, never to be deleted
    elsewhere: set[str]  # ours, on OTHER
    own: list[str]  # ours on INSTANCE, COMPLETED, newest first


def seed(emu: Emulator, own_ages: tuple[float, ...] = (2, 3, 4, 5)) -> Seeded:
    untouchable = {
        emu.add_backup(INSTANCE, begin_time=NOW - timedelta(days=10)),  # automated
        emu.add_backup(INSTANCE, begin_time=NOW - timedelta(hours=1)),  # automated, newest
        emu.add_backup(
            INSTANCE, backup_type="manual", name="nightly-export", begin_time=NOW - timedelta(30)
        ),
        emu.add_backup(
            INSTANCE,
            backup_type="manual",
            name="predeploy-by-hand",
            description="made by hand before the migration",
            begin_time=NOW - timedelta(days=31),
        ),
        emu.add_backup(
            INSTANCE,
            backup_type="manual",
            name="release-7",
            description="copied from ours [pd:00000000000000ff]",
            begin_time=NOW - timedelta(days=32),
        ),
        ours(emu, 40, status="FAILED"),
    }
    elsewhere = {ours(emu, 50, OTHER), ours(emu, 60, OTHER)}
    return Seeded(untouchable, elsewhere, [ours(emu, age) for age in own_ages])


def test_after_completion_keeps_the_new_one_and_the_newest_others(
    env: dict[str, str], emu: Emulator
) -> None:
    emu.configure(backup_seconds=0.2)
    seeded = seed(emu)
    response = deliver(make_client(), event(wait=True))

    assert response.status_code == 200, js(response)
    new = js(response)["backup"]["id"]
    assert js(response)["retention"] == {
        "keep": 2,
        "kept": [new, seeded.own[0]],
        "deleted": seeded.own[1:],
    }
    assert deletes(emu) == seeded.own[1:]
    assert every_backup(emu) == seeded.untouchable | {new, seeded.own[0]}
    assert every_backup(emu, OTHER) == seeded.elsewhere


def test_without_waiting_the_building_backup_does_not_count(
    env: dict[str, str], emu: Emulator
) -> None:
    emu.configure(backup_seconds=30)
    seeded = seed(emu)
    response = deliver(make_client(), event())

    assert response.status_code == 202, js(response)
    new = js(response)["backup"]["id"]
    assert js(response)["backup"]["status"] == "BUILDING"
    assert js(response)["retention"]["kept"] == seeded.own[:2]  # two COMPLETED ones remain
    assert js(response)["retention"]["deleted"] == seeded.own[2:]
    assert every_backup(emu) == seeded.untouchable | {new, *seeded.own[:2]}
    assert every_backup(emu, OTHER) == seeded.elsewhere


def test_a_completed_backup_of_the_trigger_leads_also_without_waiting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("RETENTION_KEEP", "1")
    emu.configure(backup_seconds=0)  # COMPLETED by the time retention looks
    seeded = seed(emu)
    client = make_client()
    first = deliver(client, event())
    new = js(first)["backup"]["id"]
    # the newest from before the trigger is the deploy's restore point: kept beyond ``keep``
    restore_point = seeded.own[0]
    assert js(first)["retention"] == {
        "keep": 1,
        "kept": [new, restore_point],
        "deleted": seeded.own[1:],
    }

    again = deliver(client, event())  # a redelivery finds it COMPLETED: nothing more to do
    assert again.status_code == 200
    assert js(again)["retention"] == {"keep": 1, "kept": [new, restore_point], "deleted": []}
    assert every_backup(emu) == seeded.untouchable | {new, restore_point}


def test_off_by_default(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("RETENTION_KEEP")
    emu.configure(backup_seconds=0.2)
    seeded = seed(emu)
    response = deliver(make_client(), event(wait=True))

    assert response.status_code == 200
    assert "retention" not in js(response)
    assert deletes(emu) == []
    assert len(every_backup(emu)) == len(seeded.untouchable) + len(seeded.own) + 1


def test_a_failed_backup_deletes_nothing(env: dict[str, str], emu: Emulator) -> None:
    emu.configure(backup_seconds=0.2)
    emu.put_instance(INSTANCE, fail_backups=True)
    seed(emu)
    response = deliver(make_client(), event(wait=True))

    assert response.status_code == 502
    assert "retention" not in js(response)
    assert deletes(emu) == []


def test_a_sender_named_backup_is_never_a_candidate(env: dict[str, str], emu: Emulator) -> None:
    emu.configure(backup_seconds=0.2)
    seeded = seed(emu)
    response = deliver(make_client(), event(wait=True, name="release-8"))

    assert response.status_code == 200
    new = js(response)["backup"]["id"]
    assert js(response)["retention"]["kept"] == seeded.own[:2]  # release-8 does not count
    assert every_backup(emu) == seeded.untouchable | {new, *seeded.own[:2]}


def test_the_new_backup_is_kept_even_if_others_look_newer(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("RETENTION_KEEP", "1")
    emu.configure(backup_seconds=0.2)
    skewed = seed(emu, own_ages=(-2, -1))  # begin times in the future, newest first
    response = deliver(make_client(), event(wait=True))

    new = js(response)["backup"]["id"]
    # the new one leads; the others look younger than RETENTION_MIN_AGE_HOURS: never deleted
    assert js(response)["retention"] == {"keep": 1, "kept": [new, *skewed.own], "deleted": []}
    assert new in every_backup(emu)


def test_a_failed_deletion_is_reported_and_the_rest_go_on(
    env: dict[str, str], emu: Emulator
) -> None:
    emu.configure(backup_seconds=0.2)
    seeded = seed(emu)
    emu.inject(
        "delete_backup", status=400, error_code="DBS.201208", error_msg="not allowed", times=1
    )
    response = deliver(make_client(), event(wait=True))

    assert response.status_code == 200, js(response)
    retention = js(response)["retention"]
    assert retention["deleted"] == seeded.own[2:]
    (failed,) = retention["failed"]
    assert failed["backup_id"] == seeded.own[1]
    assert "DBS.201208" in failed["error"]
    assert seeded.own[1] in every_backup(emu)


def test_a_listing_that_fails_deletes_nothing(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    emu.configure(backup_seconds=0)
    seeded = seed(emu)
    client = make_client()
    first = deliver(client, event(id="first"))
    assert js(first)["retention"]["deleted"] == seeded.own[1:]
    # the second event's look-up reads one page; retention's listing then fails for good
    emu.inject("list_backups", status=403, error_code="DBS.200604", error_msg="no", skip=1)
    response = deliver(client, event(id="second"))

    assert response.status_code == 202, js(response)
    assert "DBS.200604" in js(response)["retention"]["error"]
    assert js(response)["retention"]["deleted"] == []
    assert {js(first)["backup"]["id"], seeded.own[0]} <= every_backup(emu)  # would have gone


@pytest.mark.parametrize("seed_value", range(5))
def test_random_mixes_keep_exactly_the_newest(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, seed_value: int
) -> None:
    rng = random.Random(seed_value)
    keep = rng.randint(1, 4)
    monkeypatch.setenv("RETENTION_KEEP", str(keep))
    monkeypatch.setenv("RETENTION_MIN_AGE_HOURS", "0")  # ages from 1 hour: only ``keep`` counts
    emu.configure(backup_seconds=0.1)
    ages = rng.sample(range(1, 500), 24)  # distinct, in hours
    candidates: dict[str, int] = {}
    untouchable: set[str] = set()
    for age in ages:
        begin = NOW - timedelta(hours=age)
        kind = rng.choice(["ours", "ours", "failed", "auto", "other", "elsewhere"])
        if kind == "ours":
            candidates[ours(emu, age / 24)] = age
        elif kind == "failed":
            untouchable.add(ours(emu, age / 24, status="FAILED"))
        elif kind == "auto":
            untouchable.add(emu.add_backup(INSTANCE, begin_time=begin))
        elif kind == "other":
            name = rng.choice(["predeploy-manual", "nightly"])
            untouchable.add(
                emu.add_backup(INSTANCE, backup_type="manual", name=name, begin_time=begin)
            )
        else:
            ours(emu, age / 24, OTHER)
    on_other = every_backup(emu, OTHER)

    response = deliver(make_client(), event(wait=True))

    assert response.status_code == 200, js(response)
    new = js(response)["backup"]["id"]
    newest_first = sorted(candidates, key=candidates.__getitem__)
    # ``keep`` with the new one, and never fewer than the restore point from before it
    expected_kept = [new, *newest_first[: max(keep - 1, 1)]]
    assert js(response)["retention"]["kept"] == expected_kept
    assert js(response)["retention"]["deleted"] == newest_first[max(keep - 1, 1) :]
    assert every_backup(emu) == untouchable | set(expected_kept)
    assert every_backup(emu, OTHER) == on_other
    assert {b["id"] for b in backups_on(emu)} >= set(expected_kept)
