"""Queue semantics on ``event``: a poison message is acknowledged, and its pipeline told.

A permanent failure is answered 2xx (so the platform stops redelivering) after a
``backup.failed`` callback and an error log line; a retryable one is answered non-2xx.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import INSTANCE, backups_on, client_fixture, env_fixture

UNKNOWN_INSTANCE = "0123456789abcdef0123456789abcdefin07"


env = env_fixture(DEADLINE_SECONDS="1")
client = client_fixture("event")


def push(message_id: str, **event: Any) -> bytes:
    document = {"event": "pre-deploy", "id": message_id, "instance_id": INSTANCE, **event}
    data = base64.b64encode(json.dumps(document).encode()).decode()
    envelope = {
        "message": {"data": data, "messageId": message_id, "publishTime": "2026-11-27T10:00:00Z"},
        "subscription": "projects/acme/subscriptions/predeploy",
    }
    return json.dumps(envelope).encode()


def deliver(client: FlaskClient, body: bytes) -> Any:
    return client.post("/", data=body, headers={"Content-Type": "application/json"})


def test_permanent_failure_is_acknowledged_with_a_failed_callback(
    client: FlaskClient,
    emu: Emulator,
    receiver: CallbackReceiver,
    capfd: pytest.CaptureFixture[str],
) -> None:
    body = push("m-1", instance_id=UNKNOWN_INSTANCE, callback_url=receiver.url + "/cb")
    response = deliver(client, body)

    assert response.status_code == 200  # acknowledged: redelivering cannot help
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["retry"], result["error_code"]) == (
        "failed",
        False,
        "DBS.200002",
    )
    (callback,) = receiver.wait_for(1)
    assert callback.verified
    assert callback.payload["type"] == "backup.failed"
    assert callback.payload["error_code"] == "DBS.200002"
    assert callback.payload["job_id"] is None and callback.payload["trigger_id"] == "m-1"
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    # one outcome line for the trigger (and one for its callback), no other line of its own
    (line,) = [x for x in lines if x["logger"] == "predeploy.event"]
    (told,) = [x for x in lines if x["logger"] == "predeploy.callback"]
    assert (told["outcome"], told["callback_type"]) == ("callback_delivered", "backup.failed")
    assert (line["level"], line["message"], line["acknowledged"]) == (
        "ERROR",
        "trigger failed for good",
        True,
    )
    assert (line["trigger_id"], line["error_code"], line["retry"]) == ("m-1", "DBS.200002", False)


def test_redelivered_poison_message_sends_the_same_failed_callback(
    client: FlaskClient, receiver: CallbackReceiver
) -> None:
    body = push("m-2", instance_id=UNKNOWN_INSTANCE, callback_url=receiver.url)
    assert deliver(client, body).status_code == 200
    assert deliver(client, body).status_code == 200
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_retryable_failure_is_redelivered_without_a_failed_callback(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    emu.inject("create_backup", status=503, times=None)
    response = deliver(client, push("m-3", callback_url=receiver.url))

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["results"][0]["retry"] is True
    assert receiver.received == []
    emu.clear_faults()
    assert backups_on(emu) == []


def test_invalid_event_in_a_queue_is_acknowledged(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    response = deliver(client, push("m-4", name="1-bad", callback_url=receiver.url))
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert result["outcome"] == "failed" and result["retry"] is False
    assert result["fields"][0]["field"].endswith("name")
    assert emu.requests() == []
