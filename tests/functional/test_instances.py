"""Several instances in one event: one backup, one result and one callback per instance.

The answer is the ``results`` shape of batches: one record per instance, ``200`` unless a
record can succeed on a later try.
"""

from __future__ import annotations

import json
from typing import Any

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
    successful_creates,
)

SECOND = "00000000000000000000000000000001in07"
THIRD = "00000000000000000000000000000002in07"
TRIO = [INSTANCE, SECOND, THIRD]


env = env_fixture(DEADLINE_SECONDS="3", CALLBACK_RETRY_SECONDS="0.5", POLL_INTERVAL_SECONDS="0.05")


def several(instance_ids: list[str], **fields: Any) -> bytes:
    return event(instance_id=None, instance_ids=instance_ids, **fields)


def test_one_backup_result_and_callback_per_instance(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    response = deliver(client, several(TRIO, callback_url=receiver.url))

    assert response.status_code == 202, js(response)
    results = js(response)["results"]
    assert [r["record"] for r in results] == [0, 1, 2]
    assert [r["instance_id"] for r in results] == TRIO
    assert [(r["outcome"], r["http_status"]) for r in results] == [("started", 202)] * 3
    assert all(r["created"] and r["job_id"] and r["trigger_id"] == "deploy-4711" for r in results)
    for instance, result in zip(TRIO, results, strict=True):
        (backup,) = backups_on(emu, instance)
        assert result["backup"]["id"] == backup["id"]
        assert result["backup"]["instance_id"] == instance
    assert len({r["backup"]["name"] for r in results}) == 3  # each instance its own name

    callbacks = receiver.wait_for(3)
    assert len(callbacks) == 3
    assert {c.payload["instance_id"]: c.payload["job_id"] for c in callbacks} == {
        r["instance_id"]: r["job_id"] for r in results
    }
    assert len({c.headers["webhook-id"] for c in callbacks}) == 3


def test_redelivery_of_several_makes_nothing_new(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    body = several(TRIO, callback_url=receiver.url)
    first = js(deliver(client, body))
    again = deliver(client, body)

    assert again.status_code == 200
    assert [r["outcome"] for r in js(again)["results"]] == ["exists"] * 3
    assert [r["backup"]["id"] for r in js(again)["results"]] == [
        r["backup"]["id"] for r in first["results"]
    ]
    assert successful_creates(emu) == 3
    callbacks = receiver.wait_for(6)
    by_instance: dict[str, set[str]] = {}
    for callback in callbacks:
        by_instance.setdefault(callback.payload["instance_id"], set()).add(
            callback.headers["webhook-id"]
        )
    assert all(len(ids) == 1 for ids in by_instance.values())  # stable per instance


def test_a_list_of_one_is_the_same_trigger_as_instance_id(
    client: FlaskClient, emu: Emulator
) -> None:
    first = js(deliver(client, event()))
    again = deliver(client, several([INSTANCE]))
    assert again.status_code == 200
    assert js(again)["backup"]["id"] == first["backup"]["id"]  # one result, not a list
    assert successful_creates(emu) == 1


def test_sender_named_backup_gets_the_name_on_every_instance(
    client: FlaskClient, emu: Emulator
) -> None:
    response = deliver(client, several([INSTANCE, SECOND], name="release-42"))
    assert [r["outcome"] for r in js(response)["results"]] == ["started"] * 2
    assert [backups_on(emu, i)[0]["name"] for i in (INSTANCE, SECOND)] == ["release-42"] * 2


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"instance_ids": [INSTANCE, "not-an-id"]}, "instance_ids.1", "32 lowercase"),
        ({"instance_ids": [INSTANCE, SECOND, INSTANCE]}, "instance_ids.2", "instance_ids.0"),
        ({"instance_ids": []}, "instance_ids", "at least one"),
        ({"instance_ids": INSTANCE}, "instance_ids", "JSON array"),
        ({"instance_id": INSTANCE, "instance_ids": [SECOND]}, "instance_ids", "instance_id"),
        ({"instance_id": None}, "instance_id", "is required"),
    ],
    ids=["bad-id", "duplicate", "empty", "not-a-list", "both", "neither"],
)
def test_bad_instance_lists_are_refused_naming_the_field(
    client: FlaskClient, emu: Emulator, fields: dict[str, Any], field: str, rule: str
) -> None:
    body = event(**{"instance_id": None, **fields})
    response = deliver(client, body)

    assert response.status_code == 400, js(response)
    assert js(response)["error"] == "invalid_event"
    (error,) = js(response)["fields"]
    assert error["field"] == field
    assert rule in error["rule"]
    assert emu.requests() == []


def test_more_instances_than_allowed_are_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("MAX_INSTANCES_PER_EVENT", "2")
    response = deliver(make_client(), several(TRIO))

    assert response.status_code == 400
    (error,) = js(response)["fields"]
    assert error["field"] == "instance_ids"
    assert "at most 2" in error["rule"] and "MAX_INSTANCES_PER_EVENT" in error["rule"]
    assert emu.requests() == []


def test_a_forbidden_instance_is_refused_alone_and_never_asked_about(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("ALLOWED_INSTANCES", f"{INSTANCE},{THIRD}")
    response = deliver(make_client(), several(TRIO))

    assert response.status_code == 403  # the pipeline must not go ahead
    first, second, third = js(response)["results"]
    assert (second["outcome"], second["http_status"], second["retry"]) == ("failed", 403, False)
    assert second["error"] == "forbidden" and second["instance_id"] == SECOND
    assert first["created"] and third["created"]
    assert not [r for r in emu.requests() if SECOND in r.path or SECOND in str(r.query)]
    assert backups_on(emu, SECOND) == []


def test_one_instance_failing_leaves_the_others_done(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    emu.put_instance(SECOND, status="FROZEN")
    response = deliver(client, several(TRIO, callback_url=receiver.url))

    assert response.status_code == 409  # the pipeline must not go ahead
    first, second, third = js(response)["results"]
    assert first["created"] and third["created"]
    assert (second["outcome"], second["http_status"], second["retry"]) == ("failed", 409, False)
    assert second["error"] == "instance_not_active" and second["instance_status"] == "FROZEN"
    assert second["instance_id"] == SECOND and second["trigger_id"] == "deploy-4711"
    assert [len(backups_on(emu, i)) for i in TRIO] == [1, 0, 1]
    assert {c.payload["instance_id"] for c in receiver.wait_for(2)} == {INSTANCE, THIRD}


def test_a_busy_instance_makes_the_event_retryable(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("DEADLINE_SECONDS", "1")
    emu.put_instance(INSTANCE, status="REBOOTING")
    client = make_client()
    response = deliver(client, several([INSTANCE, SECOND]))

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    busy, done = js(response)["results"]
    assert (busy["error"], busy["http_status"], busy["retry"]) == ("instance_busy", 503, True)
    assert done["created"] is True

    emu.put_instance(INSTANCE, status="ACTIVE")  # the sender retries later
    again = deliver(client, several([INSTANCE, SECOND]))
    assert again.status_code == 202
    assert [r["outcome"] for r in js(again)["results"]] == ["started", "exists"]
    assert successful_creates(emu) == 2


def test_waiting_for_several_starts_every_backup_first(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    emu.configure(backup_seconds=0.3)
    response = deliver(client, several([INSTANCE, SECOND], wait=True, callback_url=receiver.url))

    assert response.status_code == 200, js(response)
    assert [r["status"] for r in js(response)["results"]] == ["SUCCEEDED"] * 2
    calls = [
        "create" if r.path.endswith("/create") else "poll"
        for r in emu.requests()
        if r.path.endswith("/create") or "backup_id" in r.query
    ]
    assert calls[:2] == ["create", "create"]  # both build side by side
    kinds = sorted(c.payload["type"] for c in receiver.wait_for(4))
    assert kinds == ["backup.completed"] * 2 + ["backup.started"] * 2


def test_a_queued_event_for_several_instances_is_one_record_each(
    env: dict[str, str], emu: Emulator
) -> None:
    """A generic event inside a structured CloudEvent, on the ``event`` entry point."""
    data = {"event": "pre-deploy", "id": "deploy-9", "instance_ids": [INSTANCE, SECOND]}
    cloud_event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/pipelines/42",
        "type": "dev.predeploy.pre-deploy",
        "datacontenttype": "application/json",
        "data": data,
    }
    client = make_client("event")
    headers = {"Content-Type": "application/cloudevents+json"}
    response = client.post("/", data=json.dumps(cloud_event), headers=headers)

    assert response.status_code == 200, js(response)
    assert [(r["record"], r["outcome"]) for r in js(response)["results"]] == [
        (0, "started"),
        (1, "started"),
    ]
    assert [len(backups_on(emu, i)) for i in (INSTANCE, SECOND)] == [1, 1]

    data["instance_ids"] = [INSTANCE, "nope"]
    cloud_event["id"] = "ce-2"
    bad = client.post("/", data=json.dumps(cloud_event), headers=headers)
    (record,) = js(bad)["results"]  # the whole event is refused: no instance of it is served
    assert record["outcome"] == "failed" and record["retry"] is False
    assert [f["field"] for f in record["fields"]] == ["data.instance_ids.1"]
