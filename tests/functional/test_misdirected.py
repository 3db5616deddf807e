"""Bad input named in full: unknown and missing fields together; a delivery sent to the wrong
entry point is told which one takes it. Nothing reaches the API either way."""

from __future__ import annotations

import json

import pytest

from emulator import Emulator
from helpers import INSTANCE, js, make_client, sign
from senders import sample


def test_unknown_and_missing_fields_are_named_together(env: dict[str, str], emu: Emulator) -> None:
    """The issue's example: a typo (instance for instance_id) is both unknown and missing."""
    body = b'{"event":"pre-deploy","instance":"x"}'
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 400
    fields = {f["field"]: f["rule"] for f in js(response)["fields"]}
    assert fields == {
        "instance": "is not a known field (did you mean instance_id?)",
        "instance_id": "is required (or instance_ids, a list of them)",
    }
    assert emu.requests() == []


def test_every_rule_broken_at_once_is_named(env: dict[str, str], emu: Emulator) -> None:
    body = json.dumps({"event": "deploy", "name": "1x", "nmae": "y"}).encode()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 400
    named = {f["field"] for f in js(response)["fields"]}
    assert named == {"event", "name", "nmae", "instance_id"}
    assert emu.requests() == []


def test_a_carried_event_names_them_with_its_place(env: dict[str, str], emu: Emulator) -> None:
    """A CloudEvent (structured mode, CloudEvents 1.0 spec) carrying the same mistake."""
    data = {"event": "pre-deploy", "instance": "x"}
    document = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "https://ci.example.com/p/1",
        "type": "com.example.ci.pre-deploy",
        "data": data,
    }
    headers = {"Content-Type": "application/cloudevents+json"}
    response = make_client("event").post("/", data=json.dumps(document), headers=headers)
    (record,) = js(response)["results"]
    fields = {f["field"] for f in record["fields"]}
    assert fields == {"data.instance", "data.instance_id"}
    assert emu.requests() == []


@pytest.mark.parametrize("name", ["pubsub-push", "functiongraph-timer", "functiongraph-apig"])
def test_queue_delivery_on_webhook_is_sent_to_event(
    name: str, env: dict[str, str], emu: Emulator
) -> None:
    body, headers = sample(name)
    response = make_client().post("/", data=body, headers={**headers, **sign(body)})
    assert response.status_code == 400
    message = js(response)["message"]
    assert "this is a queue delivery" in message
    assert "send it to the `event` entry point" in message
    assert emu.requests() == []


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("github-deployment", "GitHub"),
        ("gitlab-deployment", "GitLab"),
        ("generic-pre-deploy", "generic"),
    ],
)
def test_webhook_delivery_on_event_is_sent_to_webhook(
    name: str, label: str, env: dict[str, str], emu: Emulator
) -> None:
    body, headers = sample(name)
    response = make_client("event").post("/", data=body, headers=headers)
    assert response.status_code == 400
    message = js(response)["message"]
    assert "this is a webhook delivery" in message and label in message
    assert "send it to the `webhook` entry point" in message
    assert emu.requests() == []


def test_a_valid_generic_event_on_webhook_is_not_misdirected(
    env: dict[str, str], emu: Emulator
) -> None:
    body = json.dumps({"event": "pre-deploy", "id": "d-1", "instance_id": INSTANCE}).encode()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 202


def test_json_that_is_nothing_known_on_event_lists_what_is_accepted(
    env: dict[str, str], emu: Emulator
) -> None:
    response = make_client("event").post(
        "/", data=b'{"hello": 1}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    message = js(response)["message"]
    assert "matches no source accepted here" in message and "Pub/Sub" in message
    assert "send it to" not in message
