"""FunctionGraph trigger events on ``POST /invoke`` of ``event``: SMN, Kafka, timer and APIG."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from emulator import Emulator
from events import functiongraph
from helpers import INSTANCE, SetEnv, client_fixture, creates, sign
from models import Trigger
from senders import (
    GITHUB_SECRET,
    STAGING,
    github_signature,
    make_client,
    sample,
    source_settings,
)

OTHER = "0123456789abcdef0123456789abcdefin07"
HEADERS = {"Content-Type": "application/json", "X-CFF-Request-Id": "7c307f6a-cf68"}


@pytest.fixture
def env(emu: Emulator, set_env: SetEnv) -> dict[str, str]:
    emu.put_instance(STAGING)
    emu.put_instance(OTHER)
    return set_env(**source_settings())


client = client_fixture("event")


def event(**fields: Any) -> str:
    document = {"event": "pre-deploy", "id": "deploy-4711", "instance_id": INSTANCE, **fields}
    return json.dumps(document)


def invoke(client: FlaskClient, document: Any) -> Any:
    return client.post("/invoke", data=json.dumps(document), headers=HEADERS)


def statuses(response: Any) -> list[str]:
    return [r["outcome"] for r in response.get_json()["results"]]


def test_kafka_batch_with_a_bad_message_in_the_middle(client: FlaskClient, emu: Emulator) -> None:
    document = json.loads(sample("functiongraph-kafka")[0])
    document["records"][0]["messages"] = [
        event(id="a"),
        "not json at all",
        {"message": event(id="c", instance_id=STAGING)},
    ]
    response = invoke(client, document)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert statuses(response) == ["started", "failed", "started"]
    assert results[1]["fields"][0]["field"] == "records.0.messages.1"
    assert results[1]["retry"] is False
    assert sorted(c["instance_id"] for c in creates(emu)) == sorted([INSTANCE, STAGING])


def test_kafka_messages_of_several_records_are_numbered_in_order(
    client: FlaskClient, emu: Emulator
) -> None:
    document = json.loads(sample("functiongraph-kafka")[0])
    document["records"] = [
        {"topic_id": "a", "messages": [event(id="1")]},
        {
            "topic_id": "b",
            "messages": [event(id="2", instance_id="bad"), event(id="3", instance_id=STAGING)],
        },
    ]
    response = invoke(client, document)
    assert [r["record"] for r in response.get_json()["results"]] == [0, 1, 2]
    assert statuses(response) == ["started", "failed", "started"]


def test_smn_trigger_with_a_bad_record_in_the_middle(client: FlaskClient, emu: Emulator) -> None:
    document = json.loads(sample("functiongraph-smn")[0])
    good, other = document["record"]
    bad = json.loads(json.dumps(good))
    bad["smn"]["message_id"] = ""
    other["smn"]["message"] = event(id="x", instance_id=OTHER)
    document["record"] = [good, bad, other]
    response = invoke(client, document)
    assert response.status_code == 200
    assert statuses(response) == ["started", "failed", "started"]
    assert response.get_json()["results"][1]["fields"][0]["field"] == "record.1.smn.message_id"
    assert len(creates(emu)) == 2


def test_smn_trigger_record_with_a_curable_failure_asks_for_a_retry(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("DEADLINE_SECONDS", "1")
    emu.configure(backup_seconds=30)
    emu.add_backup(STAGING, backup_type="manual", status="BUILDING")
    client = make_client("event")
    response = invoke(client, json.loads(sample("functiongraph-smn")[0]))
    assert response.status_code == 503
    assert statuses(response) == ["started", "failed"]
    assert response.get_json()["results"][1]["retry"] is True


def test_timer_with_a_bad_user_event_is_acknowledged(client: FlaskClient, emu: Emulator) -> None:
    document = json.loads(sample("functiongraph-timer")[0])
    document["user_event"] = "Hello world"
    response = invoke(client, document)
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert result["outcome"] == "failed"
    assert result["fields"] == [
        {"field": "user_event", "rule": "is not valid JSON: Expecting value at line 1 column 1"}
    ]
    assert emu.requests() == []


def test_timer_key_is_trigger_and_time(env: dict[str, str]) -> None:
    body = sample("functiongraph-timer", callback=None)[0]  # as dated in the file
    (trigger,) = functiongraph.parse({}, body, load_settings()).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == [
        "timer",
        "firing",
        "nightly-release-window",
        "2026-11-27T10:00:00+01:00",
        INSTANCE,
    ]
    assert trigger.previous_key == "timer:nightly-release-window@2026-11-27T10:00:00+01:00"
    assert (
        trigger.sent_at is not None and trigger.sent_at.isoformat() == "2026-11-27T10:00:00+01:00"
    )


# --- APIG: a wrapped HTTP request, served like webhook and answered in APIG's shape ----------


def apig(body: bytes, headers: dict[str, str], method: str = "POST") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(sample("functiongraph-apig")[0])
    document["body"] = base64.b64encode(body).decode()
    document["headers"] = {k.lower(): v for k, v in headers.items()}
    document["httpMethod"] = method
    return document


def unwrap(response: Any) -> tuple[int, Any]:
    assert response.status_code == 200  # APIG takes the status from the envelope
    envelope = response.get_json()
    assert set(envelope) == {"statusCode", "headers", "body", "isBase64Encoded"}
    return envelope["statusCode"], json.loads(envelope["body"])


def test_apig_signed_generic_event(client: FlaskClient, emu: Emulator) -> None:
    body = event().encode()
    status, answer = unwrap(invoke(client, apig(body, sign(body))))
    assert status == 202
    assert answer["job_id"]
    assert len(creates(emu)) == 1


def test_apig_plain_body(client: FlaskClient, emu: Emulator) -> None:
    body = event().encode()
    document = {**apig(body, sign(body)), "body": body.decode(), "isBase64Encoded": False}
    status, _ = unwrap(invoke(client, document))
    assert status == 202


def test_apig_github_delivery(client: FlaskClient, emu: Emulator) -> None:
    raw, headers = sample("github-deployment")
    headers = {**headers, "X-Hub-Signature-256": github_signature(raw, GITHUB_SECRET)}
    status, answer = unwrap(invoke(client, apig(raw, headers)))
    assert status == 202, answer
    assert answer["trigger_id"] == "deployment-1452339931"


@pytest.mark.parametrize(
    ("headers_for", "message"),
    [
        (lambda body: {"Content-Type": "application/json"}, "not authenticated"),
        (lambda body: sign(b"{}"), "does not match"),
    ],
    ids=["missing", "wrong"],
)
def test_apig_unverified_request_is_refused_in_apig_shape(
    client: FlaskClient, emu: Emulator, headers_for: Any, message: str
) -> None:
    body = event().encode()
    status, answer = unwrap(invoke(client, apig(body, headers_for(body))))
    assert status == 401
    assert message in answer["message"]
    assert emu.requests() == []


def test_apig_get_is_refused_in_apig_shape(client: FlaskClient, emu: Emulator) -> None:
    status, answer = unwrap(invoke(client, apig(b"", {}, method="GET")))
    assert status == 400
    assert "POST" in answer["message"]
    assert emu.requests() == []


def test_apig_bad_base64_is_refused_in_apig_shape(client: FlaskClient, emu: Emulator) -> None:
    document = {**apig(b"", {}), "body": "%%%"}
    status, answer = unwrap(invoke(client, document))
    assert status == 400
    assert answer["fields"] == [{"field": "body", "rule": "must be base64"}]
