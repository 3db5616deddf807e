"""The instance pre-check: ``ACTIVE`` goes, passing statuses are busy, the rest need a person."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from emulator import Emulator
from errors import InstanceBusyError, InstanceNotActiveError
from handlers.precheck import PASSING, STOPPED, require_active
from helpers import (
    INSTANCE,
    backups_on,
    creates,
    deliver,
    env_fixture,
    event,
    js,
    make_client,
)
from models import Instance

env = env_fixture(DEADLINE_SECONDS="1")


def looks(emu: Emulator) -> int:
    return sum(1 for r in emu.requests() if r.method == "GET" and "/instances/" in r.path)


def test_active_instance_is_asked_once_then_backed_up(client: FlaskClient, emu: Emulator) -> None:
    response = deliver(client, event())
    assert response.status_code == 202
    calls = [r.path.rsplit("/", 1)[-1] for r in emu.requests() if "/auth/" not in r.path]
    # the look-up and the pre-check (side by side, in either order), then the create
    assert sorted(calls[:2]) == sorted(["backups", INSTANCE]) and calls[2:] == ["create"]


@pytest.mark.parametrize("status", sorted(PASSING - {"BACKING UP"}))
def test_passing_status_is_busy_and_retried_until_the_deadline(
    client: FlaskClient, emu: Emulator, status: str
) -> None:
    emu.put_instance(INSTANCE, status=status)
    response = deliver(client, event())

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert js(response)["error"] == "instance_busy"
    assert js(response)["instance_status"] == status
    assert status in js(response)["message"]
    assert looks(emu) >= 2  # asked again within the deadline
    assert len(creates(emu)) == 0


@pytest.mark.parametrize("status", [*sorted(STOPPED), "HIBERNATING"])
def test_other_status_is_409_at_once_naming_it(
    client: FlaskClient, emu: Emulator, status: str
) -> None:
    emu.put_instance(INSTANCE, status=status)
    response = deliver(client, event())

    assert response.status_code == 409
    assert "Retry-After" not in response.headers
    assert js(response)["error"] == "instance_not_active"
    assert js(response)["instance_status"] == status
    assert f"is {status}, not ACTIVE" in js(response)["message"]
    assert looks(emu) == 1
    assert len(creates(emu)) == 0


def test_backing_up_counts_as_busy_and_passes_when_the_backup_ends(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("DEADLINE_SECONDS", "6")
    emu.configure(backup_seconds=0.5)
    emu.add_backup(INSTANCE, backup_type="auto", status="BUILDING")  # the nightly one runs
    response = deliver(make_client(), event())

    assert response.status_code == 202, js(response)
    assert looks(emu) >= 2
    assert len(creates(emu)) == 1  # no create was sent while the instance was BACKING UP


def test_unknown_instance_is_the_apis_404(client: FlaskClient, emu: Emulator) -> None:
    response = deliver(client, event(instance_id="f" * 32 + "in07"))
    assert response.status_code == 404
    assert js(response)["error_code"] == "DBS.200002"
    assert len(creates(emu)) == 0


def test_existing_backup_is_answered_whatever_the_status(
    client: FlaskClient, emu: Emulator
) -> None:
    first = js(deliver(client, event()))
    emu.put_instance(INSTANCE, status="FROZEN")
    before = looks(emu)
    again = deliver(client, event())

    assert again.status_code == 200
    assert js(again)["backup"]["id"] == first["backup"]["id"]
    assert looks(emu) <= before + 1  # asked side by side with the look-up, then not used
    assert len(backups_on(emu)) == 1


@pytest.mark.parametrize("status", ["ACTIVE", "active", "NORMAL", " ACTIVE "])
def test_ready_spellings(status: str) -> None:
    require_active(Instance(id=INSTANCE, status=status))


def test_require_active_kinds() -> None:
    with pytest.raises(InstanceBusyError):
        require_active(Instance(id=INSTANCE, status="backing up"))
    with pytest.raises(InstanceNotActiveError) as caught:
        require_active(Instance(id=INSTANCE, status="STORAGE FULL"))
    assert "storage is full" in caught.value.message
    assert caught.value.instance_status == "STORAGE FULL"
