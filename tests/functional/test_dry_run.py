"""Dry run: the checks and the look-up of a real run, and nothing made, deleted or called back."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import (
    INSTANCE,
    backups_on,
    deliver,
    env_fixture,
    event,
    js,
    make_client,
)

OTHER = "00000000000000000000000000000001in07"

env = env_fixture(DEADLINE_SECONDS="2", CALLBACK_RETRY_SECONDS="0.5")


def changes(emu: Emulator) -> list[str]:
    """Requests that would change something upstream: creates and deletes."""
    return [
        f"{r.method} {r.path}"
        for r in emu.requests()
        if r.method == "DELETE" or r.path.endswith("/backups/create")
    ]


def test_dry_run_reports_what_a_real_run_would_do_and_makes_nothing(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    response = deliver(client, event(dry_run=True, callback_url=receiver.url))

    assert response.status_code == 200, js(response)
    answer = js(response)
    assert answer["dry_run"] is True
    assert answer["instance_id"] == INSTANCE
    assert answer["trigger_id"] == "deploy-4711"
    assert answer["instance_status"] == "ACTIVE"
    assert answer["existing_backup"] is None
    assert answer["backup_name"].startswith("predeploy-deploy-4711-")
    assert answer["backup_description"].endswith("]")
    assert "retention" not in answer
    assert changes(emu) == []
    assert backups_on(emu) == []
    assert receiver.received == []  # a callback would have been sent before the answer

    real = deliver(client, event(callback_url=receiver.url))  # the same event, for real
    assert real.status_code == 202
    assert js(real)["backup"]["name"] == answer["backup_name"]
    assert js(real)["backup"]["description"] == answer["backup_description"]


def test_dry_run_after_the_real_run_finds_its_backup(client: FlaskClient, emu: Emulator) -> None:
    created = js(deliver(client, event()))
    emu.configure(backup_seconds=30)
    emu.add_backup(INSTANCE, status="BUILDING")  # busy: does not matter, the backup exists
    response = deliver(client, event(dry_run=True))

    assert response.status_code == 200, js(response)
    assert js(response)["existing_backup"]["id"] == created["backup"]["id"]
    assert js(response)["instance_status"] == "BACKING UP"
    assert len(backups_on(emu)) == 1


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [("FROZEN", 409, "instance_not_active"), ("STORAGE FULL", 409, "instance_not_active")],
)
def test_dry_run_refuses_an_instance_that_is_not_active(
    client: FlaskClient, emu: Emulator, status: str, code: int, error: str
) -> None:
    emu.put_instance(INSTANCE, status=status)
    response = deliver(client, event(dry_run=True))
    assert response.status_code == code
    assert js(response)["error"] == error
    assert js(response)["instance_status"] == status
    assert status in js(response)["message"]
    assert changes(emu) == []


def test_dry_run_on_a_busy_instance_answers_at_once(client: FlaskClient, emu: Emulator) -> None:
    emu.configure(backup_seconds=30)
    emu.add_backup(INSTANCE, status="BUILDING")
    response = deliver(client, event(dry_run=True))

    assert response.status_code == 503
    assert js(response)["error"] == "instance_busy"
    assert int(response.headers["Retry-After"]) > 0
    looks = [r for r in emu.requests() if "/instances/" in r.path]
    assert len(looks) == 1  # not waited for, unlike a real run
    assert changes(emu) == []


def test_dry_run_of_an_unknown_instance_is_the_apis_404(client: FlaskClient, emu: Emulator) -> None:
    response = deliver(client, event(dry_run=True, instance_id="f" * 32 + "in07"))
    assert response.status_code == 404
    assert js(response)["error_code"] == "DBS.200002"
    assert changes(emu) == []


def test_dry_run_is_refused_like_a_real_run(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("ALLOWED_INSTANCES", OTHER)
    client = make_client()

    forbidden = deliver(client, event(dry_run=True))
    assert forbidden.status_code == 403
    bad_callback = deliver(
        client, event(dry_run=True, instance_id=OTHER, callback_url="http://10.0.0.1/x")
    )
    assert bad_callback.status_code == 400
    assert js(bad_callback)["fields"][0]["field"] == "callback_url"
    body = event(dry_run=True, instance_id=OTHER)
    unsigned = client.post("/", data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert emu.requests() == []


def test_dry_run_must_be_a_boolean(client: FlaskClient, emu: Emulator) -> None:
    response = deliver(client, event(dry_run="perhaps"))
    assert response.status_code == 400
    assert [f["field"] for f in js(response)["fields"]] == ["dry_run"]
    assert emu.requests() == []


def test_dry_run_previews_retention_without_deleting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    emu.configure(backup_seconds=0)
    first = js(deliver(make_client(), event(id="deploy-1")))
    second = js(deliver(make_client(), event(id="deploy-2")))
    monkeypatch.setenv("RETENTION_KEEP", "1")
    # both are seconds old: without the guard age, only ``keep`` and the restore point count
    monkeypatch.setenv("RETENTION_MIN_AGE_HOURS", "0")
    monkeypatch.setenv("CLOCK_SKEW_SECONDS", "0")

    response = deliver(make_client(), event(id="deploy-3", dry_run=True))
    assert response.status_code == 200
    assert js(response)["retention"] == {
        "keep": 1,
        "kept": [second["backup"]["id"]],
        "would_delete": [first["backup"]["id"]],
    }
    assert len(backups_on(emu)) == 2
    assert [r for r in emu.requests() if r.method == "DELETE"] == []


def test_dry_run_for_several_instances(client: FlaskClient, emu: Emulator) -> None:
    emu.put_instance(OTHER, status="REBOOTING")
    response = deliver(
        client, event(instance_id=None, instance_ids=[INSTANCE, OTHER], dry_run=True)
    )

    assert response.status_code == 503  # the busy one can succeed later
    first, second = js(response)["results"]
    assert first["outcome"] == "dry_run" and first["http_status"] == 200
    assert "status" not in first  # a dry run makes no backup: nothing to poll
    assert first["dry_run"] is True and first["instance_id"] == INSTANCE
    assert second["error"] == "instance_busy" and second["instance_id"] == OTHER
    assert changes(emu) == []


def test_queued_dry_run_that_fails_for_good_calls_nothing_back(
    env: dict[str, str], emu: Emulator, receiver: CallbackReceiver
) -> None:
    """On ``event`` a permanent failure is acknowledged with a ``backup.failed`` callback;
    not for a dry run."""
    emu.put_instance(INSTANCE, status="FROZEN")
    data = {"event": "pre-deploy", "id": "d-1", "instance_id": INSTANCE, "dry_run": True}
    cloud_event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/pipelines/42",
        "type": "dev.predeploy.pre-deploy",
        "data": {**data, "callback_url": receiver.url},
    }
    response = make_client("event").post(
        "/", data=json.dumps(cloud_event), headers={"Content-Type": "application/cloudevents+json"}
    )

    assert response.status_code == 200  # acknowledged: frozen stays frozen
    (record,) = js(response)["results"]
    assert (record["outcome"], record["error"]) == ("failed", "instance_not_active")
    assert receiver.received == []
    assert changes(emu) == []
