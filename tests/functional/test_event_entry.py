"""The ``event`` entry point as a whole, and what both entry points say about unknown shapes."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from emulator import Emulator
from helpers import client_fixture, env_fixture
from senders import make_client, sample, source_settings

env = env_fixture(**source_settings())
client = client_fixture("event")


def test_functiongraph_initializer_is_answered(client: FlaskClient, emu: Emulator) -> None:
    response = client.post("/init", data=b"", headers={"X-CFF-Request-Id": "1"})
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}
    assert emu.requests() == []


def test_initializer_reports_a_broken_setting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTANCE_MAP", "{broken")
    response = make_client("event").post("/init")
    assert response.status_code == 500
    assert "INSTANCE_MAP" in response.get_json()["message"]


def test_get_is_405(client: FlaskClient) -> None:
    response = client.get("/invoke")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_unknown_shape_lists_the_accepted_sources(client: FlaskClient, emu: Emulator) -> None:
    response = client.post(
        "/", data=json.dumps({"hello": "world"}), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    message = response.get_json()["message"]
    for source in ("CloudEvents", "Pub/Sub", "FunctionGraph", "APIG"):
        assert source in message
    assert emu.requests() == []


def test_webhook_senders_are_not_accepted_on_event(client: FlaskClient, emu: Emulator) -> None:
    body, headers = sample("github-deployment")
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 400
    assert "matches no source" in response.get_json()["message"]
    assert emu.requests() == []


def test_oversized_delivery_is_413(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """Pub/Sub's pushes are acknowledged instead (test_sources_pubsub); a CloudEvent is not."""
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    body, headers = sample("cloudevents-structured")
    response = make_client("event").post("/", data=body, headers=headers)
    assert response.status_code == 413
    assert emu.requests() == []


def test_malformed_cloudevent_never_echoes_the_request(client: FlaskClient, emu: Emulator) -> None:
    """functions-framework's cloud_event signature would answer with the request's headers."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "1",
        "Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.secret-token",
        "X-Custom": "private-value",
    }
    response = client.post("/", data=b'{"instance_id": "secret-body"}', headers=headers)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    for leaked in ("secret-token", "private-value", "secret-body", "Authorization"):
        assert leaked not in text
    assert emu.requests() == []


def test_webhook_unknown_shape_lists_the_accepted_sources(
    env: dict[str, str], emu: Emulator
) -> None:
    response = make_client("webhook").post(
        "/", data=b"<deploy/>", headers={"Content-Type": "text/xml"}
    )
    assert response.status_code == 400
    message = response.get_json()["message"]
    for source in ("GitHub", "GitLab", "SMN", "CloudEvents", "generic"):
        assert source in message
    assert emu.requests() == []
