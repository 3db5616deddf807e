"""Google Pub/Sub push on ``event``: the envelope, the key, and when Pub/Sub should redeliver."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from emulator import Emulator
from events import pubsub
from helpers import INSTANCE, client_fixture, creates, env_fixture
from models import Trigger
from senders import make_client, sample, source_settings

env = env_fixture(**source_settings())
client = client_fixture("event")


def push(
    data: bytes | str | None = None,
    *,
    encoded: str | None = None,
    drop: tuple[str, ...] = (),
    **message: Any,
) -> bytes:
    """The sample's envelope with ``data`` base64-encoded (or ``encoded`` as given) into it."""
    document = json.loads(sample("pubsub-push")[0])
    if data is not None:
        raw = data if isinstance(data, bytes) else data.encode()
        document["message"]["data"] = base64.b64encode(raw).decode()
    if encoded is not None:
        document["message"]["data"] = encoded
    document["message"].update(message)
    for name in drop:
        del document["message"][name]
    return json.dumps(document).encode()


def event(**fields: Any) -> str:
    document = {"event": "pre-deploy", "id": "deploy-4711", "instance_id": INSTANCE, **fields}
    return json.dumps({k: v for k, v in document.items() if v is not None})


HEADERS = {"Content-Type": "application/json"}


def test_the_message_id_is_the_key(env: dict[str, str]) -> None:
    (trigger,) = pubsub.parse({}, push(event(id=None)), load_settings()).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["pubsub", "message", "13452238701935066", INSTANCE]
    assert trigger.previous_key == "pubsub:13452238701935066"
    assert trigger.trigger_id == "13452238701935066"


def test_snake_case_message_id_alone_is_enough(env: dict[str, str]) -> None:
    body = push(event(id=None), drop=("messageId",))
    (trigger,) = pubsub.parse({}, body, load_settings()).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["pubsub", "message", "13452238701935066", INSTANCE]


def test_message_backs_up(client: FlaskClient, emu: Emulator) -> None:
    response = client.post("/", data=push(event()), headers=HEADERS)
    assert response.status_code == 200, response.get_json()
    (result,) = response.get_json()["results"]
    assert result["outcome"] == "started"
    assert result["trigger_id"] == "deploy-4711"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (push(drop=("message_id", "messageId")), "message"),
        (
            json.dumps(
                {"message": {"data": "e30=", "messageId": "1"}, "subscription": ""}
            ).encode(),
            "subscription",
        ),
    ],
)
def test_malformed_envelope_is_acknowledged_as_failed(
    client: FlaskClient, emu: Emulator, body: bytes, field: str
) -> None:
    """Pub/Sub redelivers a 4xx until retention ends: the broken envelope is acknowledged,
    as one failed record naming the field, and nothing is called."""
    response = client.post("/", data=body, headers=HEADERS)
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["http_status"], result["retry"]) == ("failed", 400, False)
    assert field in {f["field"] for f in result["fields"]}
    assert emu.requests() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (push(data=b"\xff\xfe"), "message.data"),
        (push(data="[1]"), "message.data"),
        (push(data=event(instance_id="x")), "message.data.instance_id"),
        (push(encoded="!!not base64!!"), "message.data"),
        # A message published with attributes only: Pub/Sub leaves "data" out (or empty).
        (push(drop=("data",)), "message.data"),
        (push(encoded=""), "message.data"),
    ],
)
def test_bad_message_is_acknowledged_so_pubsub_stops(
    client: FlaskClient, emu: Emulator, body: bytes, field: str
) -> None:
    """Pub/Sub redelivers anything but 2xx; a bad message would come back forever."""
    response = client.post("/", data=body, headers=HEADERS)
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["retry"]) == ("failed", False)
    assert field in {f["field"] for f in result["fields"]}
    assert emu.requests() == []


def test_busy_instance_asks_pubsub_to_redeliver(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("DEADLINE_SECONDS", "1")
    emu.configure(backup_seconds=30)
    emu.add_backup(INSTANCE, backup_type="manual", status="BUILDING")
    client = make_client("event")
    response = client.post("/", data=push(event()), headers=HEADERS)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["retry"]) == ("failed", True)


def test_broken_setup_asks_pubsub_to_redeliver(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """Fixing the setting lets the message through later; acknowledging it would lose it."""
    monkeypatch.setenv("OS_PASSWORD", "wrong-password-123")
    response = make_client("event").post("/", data=push(event()), headers=HEADERS)
    assert response.status_code == 502
    (result,) = response.get_json()["results"]
    assert (result["error"], result["retry"]) == ("iam_authentication_failed", True)
    assert "wrong-password-123" not in response.get_data(as_text=True)


def test_envelope_without_subscription_is_not_pubsub(client: FlaskClient, emu: Emulator) -> None:
    response = client.post("/", data=b'{"message": {"data": "e30="}}', headers=HEADERS)
    assert response.status_code == 400
    assert "matches no source" in response.get_json()["message"]
    assert "Pub/Sub push" in response.get_json()["message"]
    assert emu.requests() == []


def test_push_envelope_on_webhook_is_not_accepted_unverified(
    env: dict[str, str], emu: Emulator
) -> None:
    """Refused before any verification or parsing, with the entry point that takes it."""
    response = make_client("webhook").post("/", data=push(event()), headers=HEADERS)
    assert response.status_code == 400
    assert "send it to the `event` entry point" in response.get_json()["message"]
    assert emu.requests() == []


def test_publish_time_is_the_trigger_sent_at(env: dict[str, str]) -> None:
    body = push(event(), publishTime="2026-11-27T10:00:00.124Z")  # as the sample dates it
    (trigger,) = pubsub.parse({}, body, load_settings()).records
    assert isinstance(trigger, Trigger)
    assert trigger.sent_at == datetime(2026, 11, 27, 10, 0, 0, 124000, tzinfo=UTC)


# --- payload unwrapping ------------------------------------------------------------------------
# Pub/Sub, "Payload unwrapping" (push subscriptions): the body is the message data as published,
# attributes come as plain headers; with "write metadata", x-goog-pubsub-subscription-name,
# x-goog-pubsub-message-id and x-goog-pubsub-publish-time headers are added. The User-Agent is
# the one of the sample (events/samples/pubsub-push.headers.json).

UNWRAPPED = {
    "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
    "From": "noreply@google.com",
    "pipeline": "acme/shop",  # the message's attributes, as headers
    "environment": "production",
}
METADATA = {
    "x-goog-pubsub-subscription-name": "projects/acme-ci/subscriptions/predeploy-backup-push",
    "x-goog-pubsub-message-id": "13452238701935066",
    "x-goog-pubsub-publish-time": "2026-11-27T10:00:00.124Z",
}


def test_unwrapped_with_metadata_is_keyed_on_the_message_id_without_an_event_id(
    client: FlaskClient, emu: Emulator
) -> None:
    response = client.post("/", data=event(), headers=UNWRAPPED | METADATA)
    assert response.status_code == 200, response.get_json()
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["trigger_id"]) == ("started", "deploy-4711")
    (trigger,) = pubsub.parse(
        {k.lower(): v for k, v in (UNWRAPPED | METADATA).items()},
        event(id=None).encode(),
        load_settings(),
    ).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["pubsub", "message", "13452238701935066", INSTANCE]
    assert trigger.sent_at == datetime(2026, 11, 27, 10, 0, 0, 124000, tzinfo=UTC)


def test_unwrapped_without_metadata_is_keyed_on_the_event_id(
    client: FlaskClient, emu: Emulator
) -> None:
    response = client.post("/", data=event(), headers=UNWRAPPED)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["results"][0]["outcome"] == "started"
    again = client.post("/", data=event(), headers=UNWRAPPED)  # a redelivery: no second backup
    assert again.get_json()["results"][0]["outcome"] == "exists"
    assert len(creates(emu)) == 1
    headers = {k.lower(): v for k, v in UNWRAPPED.items()}
    (trigger,) = pubsub.parse(headers, event().encode(), load_settings()).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["pubsub", "id", "deploy-4711", INSTANCE]
    assert trigger.sent_at is None


def test_unwrapped_without_metadata_or_id_is_keyed_on_the_body(env: dict[str, str]) -> None:
    body = event(id=None).encode()
    headers = {k.lower(): v for k, v in UNWRAPPED.items()}
    (trigger,) = pubsub.parse(headers, body, load_settings()).records
    assert isinstance(trigger, Trigger)
    digest = hashlib.sha256(body).hexdigest()
    assert json.loads(trigger.key) == ["pubsub", "sha256", digest, INSTANCE]


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        (b"", UNWRAPPED, "body"),  # attributes only, unwrapped
        (b"", UNWRAPPED | METADATA, "body"),
        (event(instance_id="x").encode(), UNWRAPPED, "body.instance_id"),
    ],
)
def test_unreadable_unwrapped_message_is_acknowledged(
    client: FlaskClient, emu: Emulator, body: bytes, headers: dict[str, str], field: str
) -> None:
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["retry"]) == ("failed", False)
    assert field in {f["field"] for f in result["fields"]}
    assert emu.requests() == []


def test_unwrapped_text_is_acknowledged(client: FlaskClient, emu: Emulator) -> None:
    response = client.post("/", data=b"deploy now", headers=UNWRAPPED | METADATA)
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["error"]) == ("failed", "invalid_event")
    assert "not valid JSON" in result["message"]
    assert emu.requests() == []


def test_oversized_push_is_acknowledged_not_redelivered(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """Fails before any source reads it; Pub/Sub's headers say a 413 would come back forever."""
    monkeypatch.setenv("MAX_BODY_BYTES", "64")
    response = make_client("event").post("/", data=push(event()), headers=UNWRAPPED)
    assert response.status_code == 200
    (result,) = response.get_json()["results"]
    assert (result["outcome"], result["http_status"]) == ("failed", 413)
    assert result["error"] == "payload_too_large"
    assert emu.requests() == []


def test_oversized_delivery_of_another_platform_stays_413(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "64")
    response = make_client("event").post("/", data=push(event()), headers=HEADERS)
    assert response.status_code == 413
    assert emu.requests() == []
