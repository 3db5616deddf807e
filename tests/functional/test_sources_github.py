"""GitHub deployment webhooks on ``webhook``: verification, instance resolution, other events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from emulator import Emulator
from errors import UnauthorizedError
from events import github
from helpers import INSTANCE, SetEnv, creates
from models import Trigger
from senders import (
    GITHUB_SECRET,
    STAGING,
    github_signature,
    make_client,
    sample,
    source_settings,
)

DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.fixture
def env(emu: Emulator, set_env: SetEnv) -> dict[str, str]:
    emu.put_instance(STAGING)
    return set_env(**source_settings())


def deployment(**payload: Any) -> bytes:
    document = json.loads(sample("github-deployment")[0])
    document["deployment"]["payload"] = payload
    return json.dumps(document).encode()


def headers(body: bytes, event: str = "deployment", **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": DELIVERY,
        "X-Hub-Signature-256": github_signature(body),
        **extra,
    }


def test_instance_from_the_deployment_payload(client: FlaskClient, emu: Emulator) -> None:
    body = deployment(instance_id=STAGING)
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["trigger_id"] == "deployment-1452339931"
    assert [c["instance_id"] for c in creates(emu)] == [STAGING]


def test_instance_from_instance_map_by_environment(client: FlaskClient, emu: Emulator) -> None:
    body = deployment()  # environment "production", no instance in the payload
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 202, response.get_json()
    assert [c["instance_id"] for c in creates(emu)] == [INSTANCE]


def test_payload_given_as_json_text(client: FlaskClient, emu: Emulator) -> None:
    document = json.loads(deployment())
    document["deployment"]["payload"] = json.dumps({"instance_id": STAGING})
    body = json.dumps(document).encode()
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 202, response.get_json()
    assert [c["instance_id"] for c in creates(emu)] == [STAGING]


def test_unmapped_environment_is_acknowledged_and_ignored(
    client: FlaskClient, emu: Emulator
) -> None:
    document = json.loads(deployment())
    document["deployment"]["environment"] = "review/feature-x"
    body = json.dumps(document).encode()
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 200
    assert response.get_json()["note"] == "ignored"
    assert "review/feature-x" in response.get_json()["message"]
    assert "INSTANCE_MAP" in response.get_json()["message"]
    assert emu.requests() == []


def test_ping_is_answered_without_a_backup(client: FlaskClient, emu: Emulator) -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 292430182}).encode()
    response = client.post("/", data=body, headers=headers(body, event="ping"))
    assert response.status_code == 200
    assert response.get_json()["note"] == "pong"
    assert "status" not in response.get_json()  # status is only ever a backup's
    assert emu.requests() == []


def test_other_events_are_ignored(client: FlaskClient, emu: Emulator) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    response = client.post("/", data=body, headers=headers(body, event="push"))
    assert response.status_code == 200
    assert response.get_json() == {
        "note": "ignored",
        "message": "GitHub 'push' events start no backup: subscribe to deployment events",
    }
    assert emu.requests() == []


def test_malformed_instance_in_payload_is_named(client: FlaskClient, emu: Emulator) -> None:
    body = deployment(instance_id="not-an-instance")
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 400
    fields = {f["field"] for f in response.get_json()["fields"]}
    assert fields == {"deployment.payload.instance_id"}
    assert emu.requests() == []


def test_missing_delivery_id_is_no_matter(client: FlaskClient, emu: Emulator) -> None:
    """X-GitHub-Delivery is not signed: it is for the logs, the key comes from the body."""
    body = deployment()
    sent = {k: v for k, v in headers(body).items() if k != "X-GitHub-Delivery"}
    response = client.post("/", data=body, headers=sent)
    assert response.status_code == 202, response.get_json()
    assert len(creates(emu)) == 1


def test_deployment_without_repository_id_is_refused(client: FlaskClient, emu: Emulator) -> None:
    document = json.loads(deployment())
    del document["repository"]["id"]
    body = json.dumps(document).encode()
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 400
    fields = {f["field"] for f in response.get_json()["fields"]}
    assert fields == {"repository.id"}
    assert emu.requests() == []


def test_form_encoded_webhook_is_415(client: FlaskClient, emu: Emulator) -> None:
    body = b"payload=%7B%7D"
    sent = headers(body, **{"Content-Type": "application/x-www-form-urlencoded"})
    response = client.post("/", data=body, headers=sent)
    assert response.status_code == 415
    assert "application/json" in response.get_json()["message"]
    assert emu.requests() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X-Hub-Signature-256": None}, "missing X-Hub-Signature-256"),
        ({"X-Hub-Signature-256": github_signature(b"{}")}, "does not match"),
        ({"X-Hub-Signature-256": github_signature(deployment(), "other")}, "does not match"),
        ({"X-Hub-Signature-256": "sha1=0123456789abcdef"}, "malformed"),
        ({"X-Hub-Signature-256": "sha256=zz"}, "does not match"),
    ],
)
def test_unverified_delivery_is_refused(
    client: FlaskClient, emu: Emulator, change: dict[str, str | None], message: str
) -> None:
    body = deployment()
    sent = {**headers(body), **change}
    response = client.post("/", data=body, headers={k: v for k, v in sent.items() if v})
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert emu.requests() == []


def test_without_secret_every_delivery_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET")
    body = deployment()
    response = make_client("webhook").post("/", data=body, headers=headers(body))
    assert response.status_code == 401
    assert "GITHUB_WEBHOOK_SECRET" in response.get_json()["message"]
    assert GITHUB_SECRET not in response.get_data(as_text=True)
    assert emu.requests() == []


def test_the_deployment_is_the_key(env: dict[str, str]) -> None:
    """GitHub signs no header and no time: the key is the repository id and deployment id from
    the signed body; the delivery id is kept only as the previous release's key."""
    body = sample("github-deployment", callback=None)[0]  # as dated in the file
    sent = {k.lower(): v for k, v in headers(body).items()}
    (trigger,) = github.parse(sent, body, load_settings()).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["github", "deployment", "634651194", "1452339931", INSTANCE]
    assert trigger.previous_key == f"github:{DELIVERY}"
    assert trigger.instance_id == INSTANCE
    assert trigger.sent_at is not None
    assert trigger.sent_at.isoformat() == "2026-11-27T10:00:00+00:00"


# GitHub docs, "Validating webhook deliveries": the test vector for any implementation
# (secret, body in /work/shared/payloads/github/hello.txt, and the signature GitHub computes).
TEST_VECTOR_SECRET = "It's a Secret to Everybody"
TEST_VECTOR_BODY = b"Hello, World!"
TEST_VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_own_test_vector_verifies(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", TEST_VECTOR_SECRET)
    headers = {"x-hub-signature-256": TEST_VECTOR_SIGNATURE}
    github.verify(headers, TEST_VECTOR_BODY, load_settings())  # raises when it does not match


def test_test_vector_with_another_secret_does_not_verify(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "It's a Secret to Everybody!")
    with pytest.raises(UnauthorizedError, match="does not match the body"):
        github.verify(
            {"x-hub-signature-256": TEST_VECTOR_SIGNATURE}, TEST_VECTOR_BODY, load_settings()
        )


def test_delivery_signed_with_a_secret_with_spaces_backs_up(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """The secret, taken whole, with GitHub's vector's spaces and apostrophe, and a comma."""
    secret = "It's a Secret to Everybody, really"
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET_PREVIOUS", GITHUB_SECRET)
    client = make_client("webhook")
    body = deployment(instance_id=INSTANCE)
    response = client.post(
        "/",
        data=body,
        headers=headers(body) | {"X-Hub-Signature-256": github_signature(body, secret)},
    )
    assert response.status_code == 202, response.get_json()
    # the previous secret (rotation) still verifies: the same delivery, found, not made again
    response = client.post("/", data=body, headers=headers(body))
    assert response.status_code == 200, response.get_json()
    assert len(creates(emu)) == 1
    # a part of the secret is not the secret
    response = client.post(
        "/",
        data=body,
        headers=headers(body) | {"X-Hub-Signature-256": github_signature(body, "It's")},
    )
    assert response.status_code == 401
    assert len(creates(emu)) == 1
