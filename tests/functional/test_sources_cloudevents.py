"""CloudEvents on ``event`` (Knative, Eventarc) and on ``webhook`` (signed): modes, types, batch."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from emulator import Emulator
from emulator.receiver import CallbackReceiver
from events import cloudevents
from helpers import (
    INSTANCE,
    WEBHOOK_TOKEN,
    SetEnv,
    client_fixture,
    creates,
    receiver_per_module,
    sign,
)
from models import Trigger
from senders import STAGING, make_client, sample, source_settings

SOURCE = "https://ci.example.com/acme/shop/pipelines/31877"
OTHER = "0123456789abcdef0123456789abcdefin07"


receiver = receiver_per_module()


@pytest.fixture
def env(emu: Emulator, receiver: CallbackReceiver, set_env: SetEnv) -> dict[str, str]:
    emu.put_instance(STAGING)
    emu.put_instance(OTHER)
    return set_env(**source_settings(callback_url=receiver.url + "/hook"))


client = client_fixture("event")


def data(**fields: Any) -> dict[str, Any]:
    document = {"event": "pre-deploy", "id": "deploy-4711", "instance_id": INSTANCE}
    document.update(fields)
    return {k: v for k, v in document.items() if v is not None}


def structured(event_id: str = "ce-1", **attributes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": "com.example.ci.pre-deploy",
        "datacontenttype": "application/json",
        "data": data(),
    }
    event.update(attributes)
    return {k: v for k, v in event.items() if v is not None}


def post_structured(client: FlaskClient, event: Any) -> Any:
    return client.post(
        "/", data=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"}
    )


def test_binary_mode_backs_up(client: FlaskClient, emu: Emulator) -> None:
    body, headers = sample("cloudevents-binary")
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    (result,) = response.get_json()["results"]
    assert result["outcome"] == "started"
    assert result["trigger_id"] == "deploy-4711"
    assert len(creates(emu)) == 1


def test_data_base64_is_read(client: FlaskClient, emu: Emulator) -> None:
    encoded = base64.b64encode(json.dumps(data()).encode()).decode()
    response = post_structured(client, structured(data=None, data_base64=encoded))
    assert response.get_json()["results"][0]["outcome"] == "started"
    assert len(creates(emu)) == 1


def test_without_an_id_in_the_data_the_key_is_source_and_id(env: dict[str, str]) -> None:
    body = json.dumps(structured("ce-42", data=data(id=None))).encode()
    headers = {"content-type": "application/cloudevents+json"}
    (trigger,) = cloudevents.parse(headers, body, load_settings()).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["cloudevents", "ce", SOURCE, "ce-42", INSTANCE]
    assert trigger.previous_key == f"cloudevents:{SOURCE} ce-42"
    assert trigger.trigger_id == "ce-42"


def test_type_not_in_event_types_is_acknowledged_and_ignored(
    client: FlaskClient, emu: Emulator
) -> None:
    response = post_structured(client, structured(type="com.example.ci.post-deploy"))
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert result["note"] == "ignored"
    assert "EVENT_TYPES" in result["message"]
    assert emu.requests() == []


def test_event_types_can_be_configured(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("EVENT_TYPES", "com.acme.deploy.*")
    client = make_client("event")
    accepted = post_structured(client, structured(type="com.acme.deploy.started"))
    refused = post_structured(client, structured("ce-2", type="com.example.ci.pre-deploy"))
    assert accepted.get_json()["results"][0]["outcome"] == "started"
    assert refused.get_json()["results"][0]["note"] == "ignored"
    assert len(creates(emu)) == 1


@pytest.mark.parametrize(
    ("headers", "missing"),
    [
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": SOURCE}, {"ce-type"}),
        ({"ce-type": "x.pre-deploy", "ce-id": "1"}, {"ce-specversion", "ce-source"}),
    ],
)
def test_binary_event_without_required_headers_is_400(
    client: FlaskClient, emu: Emulator, headers: dict[str, str], missing: set[str]
) -> None:
    sent = {**headers, "Content-Type": "application/json", "Authorization": "Bearer s3cr3t-xyz"}
    response = client.post("/", data=json.dumps(data()), headers=sent)
    assert response.status_code == 400
    assert {f["field"] for f in response.get_json()["fields"]} == missing
    text = response.get_data(as_text=True)
    assert "s3cr3t-xyz" not in text and "Authorization" not in text  # never echoes headers
    assert emu.requests() == []


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (structured(specversion="0.3"), "specversion"),
        (structured(id=""), "id"),
        (structured(source=None), None),
    ],
)
def test_malformed_envelope_is_400(
    client: FlaskClient, emu: Emulator, event: dict[str, Any], field: str | None
) -> None:
    response = post_structured(client, event)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_event"
    if field is not None:
        assert field in {f["field"] for f in body["fields"]}
    assert emu.requests() == []


def test_invalid_data_is_acknowledged_as_a_failed_record(
    client: FlaskClient, emu: Emulator
) -> None:
    """A queue redelivers non-2xx; a wrong event stays wrong, so it is answered 200."""
    response = post_structured(client, structured(data=data(instance_id="nope")))
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert result["outcome"] == "failed"
    assert result["http_status"] == 400
    assert result["retry"] is False
    assert {f["field"] for f in result["fields"]} == {"data.instance_id"}
    assert emu.requests() == []


def test_data_that_is_not_json_is_refused(client: FlaskClient, emu: Emulator) -> None:
    response = post_structured(client, structured(datacontenttype="text/plain", data="hi"))
    (result,) = response.get_json()["results"]
    assert result["outcome"] == "failed"
    assert result["fields"] == [{"field": "datacontenttype", "rule": "must be application/json"}]
    assert emu.requests() == []


def test_batch_with_a_bad_record_in_the_middle(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    batch = [
        structured("ce-1", data=data(id="a")),
        structured("ce-2", data=data(id="b", instance_id="not-an-instance")),
        structured("ce-3", data=data(id="c", instance_id=STAGING)),
    ]
    response = client.post(
        "/", data=json.dumps(batch), headers={"Content-Type": "application/cloudevents-batch+json"}
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["record"], r["outcome"]) for r in results] == [
        (0, "started"),
        (1, "failed"),
        (2, "started"),
    ]
    assert results[1]["fields"][0]["field"] == "data.instance_id"
    assert sorted(c["instance_id"] for c in creates(emu)) == sorted([INSTANCE, STAGING])
    assert len(receiver.wait_for(2)) == 2


def test_batch_with_a_curable_failure_asks_for_redelivery(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """Two backups of one instance: the API takes one at a time, the second can go later."""
    monkeypatch.setenv("DEADLINE_SECONDS", "1")
    emu.configure(backup_seconds=30)
    client = make_client("event")
    batch = [structured("ce-1", data=data(id="a")), structured("ce-2", data=data(id="b"))]
    response = client.post(
        "/", data=json.dumps(batch), headers={"Content-Type": "application/cloudevents-batch+json"}
    )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    results = response.get_json()["results"]
    assert [r["outcome"] for r in results] == ["started", "failed"]
    assert results[1]["retry"] is True
    assert results[1]["error"] == "instance_busy"  # the pre-check saw it BACKING UP
    assert results[1]["instance_status"] == "BACKING UP"


@pytest.mark.parametrize("body", [b"{}", b"[1]", b"not json"])
def test_malformed_batch(client: FlaskClient, emu: Emulator, body: bytes) -> None:
    response = client.post(
        "/", data=body, headers={"Content-Type": "application/cloudevents-batch+json"}
    )
    if body == b"[1]":
        assert response.status_code == 200
        assert response.get_json()["results"][0]["outcome"] == "failed"
    else:
        assert response.status_code == 400
    assert emu.requests() == []


def test_other_cloudevents_formats_are_415(client: FlaskClient, emu: Emulator) -> None:
    response = client.post(
        "/", data=b"\x00", headers={"Content-Type": "application/cloudevents+avro"}
    )
    assert response.status_code == 415
    assert emu.requests() == []


# --- on webhook: a CloudEvent must be signed like the generic event -------------------------


@pytest.fixture
def webhook(env: dict[str, str]) -> FlaskClient:
    return make_client("webhook")


def test_signed_cloudevent_on_webhook(webhook: FlaskClient, emu: Emulator) -> None:
    body = json.dumps(structured()).encode()
    headers = {**sign(body), "Content-Type": "application/cloudevents+json"}
    response = webhook.post("/", data=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["trigger_id"] == "deploy-4711"


def test_bearer_token_cloudevent_on_webhook(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    body, headers = sample("cloudevents-structured")
    sent = {**headers, "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    response = make_client("webhook").post("/", data=body, headers=sent)
    assert response.status_code == 202, response.get_json()


AUTH_FAILURES = [
    (lambda body: {}, "not authenticated"),
    (lambda body: sign(b"{}"), "does not match"),
    (lambda body: {**sign(body), "webhook-id": "msg_other"}, "does not match"),
    (
        lambda body: sign(body, timestamp=datetime.now(tz=UTC) - timedelta(minutes=6)),
        "more than 5 minutes old",
    ),
    (lambda body: {"Authorization": "Bearer guessed"}, "not authenticated"),
]


@pytest.mark.parametrize(
    ("headers_for", "message"),
    AUTH_FAILURES,
    ids=["missing", "wrong-body", "wrong-id", "replayed-after-5-minutes", "unknown-token"],
)
def test_unverified_cloudevent_on_webhook_is_refused(
    webhook: FlaskClient, emu: Emulator, headers_for: Any, message: str
) -> None:
    body = json.dumps(structured()).encode()
    sent = {**headers_for(body), "Content-Type": "application/cloudevents+json"}
    response = webhook.post("/", data=body, headers=sent)
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert emu.requests() == []
