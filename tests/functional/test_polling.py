"""The polling contract (issue: pipelines wait without our client): every answer about a backup
carries ``status`` (RUNNING | SUCCEEDED | FAILED) and ``status_url``; 202 has ``Location``;
several instances: each its own, the top level the worst; re-sending the event is a poll."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from emulator import Emulator
from helpers import INSTANCE, SetEnv, creates, deliver, env_fixture, event, js, make_client, sign

env = env_fixture(POLL_INTERVAL_SECONDS="0.05")


def test_first_answer_is_running_with_a_relative_status_url_and_location(
    client: FlaskClient, emu: Emulator
) -> None:
    emu.configure(backup_seconds=30)
    response = deliver(client, event())
    body = js(response)
    assert response.status_code == 202
    assert body["status"] == "RUNNING"
    assert body["status_url"] == f"backups/{body['backup']['id']}"
    assert response.headers["Location"] == body["status_url"]


def test_public_url_makes_status_url_absolute(set_env: SetEnv) -> None:
    set_env(PUBLIC_URL="https://backup.example.com/fn")
    client = make_client()
    response = deliver(client, event())
    backup_id = js(response)["backup"]["id"]
    expected = f"https://backup.example.com/fn/backups/{backup_id}"
    assert js(response)["status_url"] == response.headers["Location"] == expected
    # a Host or X-Forwarded-Host header never changes it
    poll = client.get(
        f"/backups/{backup_id}",
        headers={**sign(b""), "Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert js(poll)["status_url"] == expected


def test_public_url_must_be_an_absolute_base_url(set_env: SetEnv, emu: Emulator) -> None:
    set_env(PUBLIC_URL="backup.example.com")
    response = deliver(make_client(), event())
    assert response.status_code == 500
    assert "PUBLIC_URL" in js(response)["message"]
    assert emu.requests() == []


def test_resending_the_event_polls_until_succeeded(client: FlaskClient, emu: Emulator) -> None:
    emu.configure(backup_seconds=0.3)
    first = deliver(client, event(id="deploy-poll"))
    assert (first.status_code, js(first)["status"]) == (202, "RUNNING")
    deadline = time.monotonic() + 10
    while True:
        again = deliver(client, event(id="deploy-poll"))
        assert again.status_code == 200 and "Location" not in again.headers
        if js(again)["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert js(again)["status"] == "SUCCEEDED"
    assert js(again)["backup"]["id"] == js(first)["backup"]["id"]
    assert len(creates(emu)) == 1


def test_status_endpoint_carries_status_url(client: FlaskClient, emu: Emulator) -> None:
    emu.put_instance(INSTANCE, fail_backups=True)
    emu.configure(backup_seconds=0.1)
    backup_id = js(deliver(client, event()))["backup"]["id"]
    time.sleep(0.3)
    poll = client.get(f"/backups/{backup_id}", headers=sign(b""))
    assert js(poll)["status"] == "FAILED"
    assert js(poll)["status_url"] == f"backups/{backup_id}"


def test_several_instances_each_carry_their_own_and_the_top_the_worst(
    client: FlaskClient, emu: Emulator
) -> None:
    other = emu.config.instances[1]
    emu.put_instance(other, status="FROZEN")  # refused for good: 409 instance_not_active
    emu.configure(backup_seconds=30)
    response = deliver(client, event(instance_id=None, instance_ids=[INSTANCE, other]))
    body = js(response)
    first, second = body["results"]
    assert (first["outcome"], first["status"]) == ("started", "RUNNING")
    assert first["status_url"] == f"backups/{first['backup']['id']}"
    assert second["outcome"] == "failed" and "status" not in second
    assert body["status"] == "FAILED"  # a failed instance: the deploy must not go on
    assert response.status_code == 409
