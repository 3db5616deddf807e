"""GitLab deployment and pipeline webhooks on ``webhook``: token, signing token, what starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from emulator import Emulator
from events import gitlab
from helpers import INSTANCE, SetEnv, creates, sign
from models import Trigger
from senders import (
    GITLAB_SIGNING_TOKEN,
    GITLAB_TOKEN,
    STAGING,
    make_client,
    sample,
    source_settings,
)

KEY = "b0c8e6f4-3a2d-4f19-9e7a-5d1c2b8a4e60"


@pytest.fixture
def env(emu: Emulator, set_env: SetEnv) -> dict[str, str]:
    emu.put_instance(STAGING)
    return set_env(**source_settings())


def hook(name: str = "gitlab-deployment", **fields: Any) -> tuple[bytes, dict[str, str]]:
    raw, headers = sample(name)
    document = json.loads(raw)
    document.update(fields)
    return json.dumps(document).encode(), {**headers, "X-Gitlab-Token": GITLAB_TOKEN}


def test_running_deployment_backs_up_the_mapped_instance(
    client: FlaskClient, emu: Emulator
) -> None:
    body, headers = hook(environment="staging")
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["trigger_id"] == "deployment-1520"
    assert [c["instance_id"] for c in creates(emu)] == [STAGING]


@pytest.mark.parametrize("status", ["created", "success", "failed", "canceled"])
def test_deployments_that_are_not_starting_are_ignored(
    client: FlaskClient, emu: Emulator, status: str
) -> None:
    body, headers = hook(status=status)
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["note"] == "ignored"
    assert repr(status) in response.get_json()["message"]
    assert emu.requests() == []


def test_unmapped_environment_is_ignored(client: FlaskClient, emu: Emulator) -> None:
    body, headers = hook(environment="review/feature-x")
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200
    assert "review/feature-x" in response.get_json()["message"]
    assert emu.requests() == []


def test_pipeline_events_start_no_backup(client: FlaskClient, emu: Emulator) -> None:
    """A running pipeline says nothing about its deploy job: the Deployment Hook does."""
    body, headers = hook("gitlab-pipeline")
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["note"] == "ignored"
    assert "enable Deployment events" in response.get_json()["message"]
    assert emu.requests() == []


def test_other_kinds_are_ignored(client: FlaskClient, emu: Emulator) -> None:
    body = json.dumps({"object_kind": "push", "ref": "refs/heads/main"}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": GITLAB_TOKEN,
    }
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["note"] == "ignored"
    assert emu.requests() == []


def test_the_deployment_is_the_key_and_the_headers_only_the_previous_one(
    env: dict[str, str],
) -> None:
    """Project id and deployment id from the body; Idempotency-Key (unsigned) is kept only
    as the previous release's key, for the look-up."""
    body, headers = hook()
    (trigger,) = gitlab.parse(
        {k.lower(): v for k, v in headers.items()}, body, load_settings()
    ).records
    assert isinstance(trigger, Trigger)
    assert json.loads(trigger.key) == ["gitlab", "deployment", "4711", "1520", INSTANCE]
    assert trigger.previous_key == f"gitlab:{KEY}"
    sent = {k.lower(): v for k, v in headers.items() if k != "Idempotency-Key"}
    sent["x-gitlab-event-uuid"] = "older-gitlab-uuid"
    (older,) = gitlab.parse(sent, body, load_settings()).records
    assert isinstance(older, Trigger)
    assert older.key == trigger.key
    assert older.previous_key == "gitlab:older-gitlab-uuid"


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "missing X-Gitlab-Token"), ("wrong-token", "not valid"), ("", "missing")],
)
def test_wrong_or_missing_token_is_refused(
    client: FlaskClient, emu: Emulator, token: str | None, message: str
) -> None:
    body, headers = hook()
    sent = {k: v for k, v in headers.items() if k != "X-Gitlab-Token"}
    if token is not None:
        sent["X-Gitlab-Token"] = token
    response = client.post("/", data=body, headers=sent)
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert GITLAB_TOKEN not in response.get_data(as_text=True)
    assert emu.requests() == []


def test_without_any_gitlab_secret_every_delivery_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("GITLAB_WEBHOOK_TOKEN")
    body, headers = hook()
    response = make_client("webhook").post("/", data=body, headers=headers)
    assert response.status_code == 401
    assert "GITLAB_WEBHOOK_TOKEN" in response.get_json()["message"]
    assert emu.requests() == []


@pytest.fixture
def signing(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    """GitLab's signing token configured: deliveries must carry its Standard Webhooks signature."""
    monkeypatch.setenv("GITLAB_WEBHOOK_SIGNING_TOKEN", GITLAB_SIGNING_TOKEN)
    return make_client("webhook")


def signed(body: bytes, headers: dict[str, str], **options: Any) -> dict[str, str]:
    signature = sign(body, secret=GITLAB_SIGNING_TOKEN, msg_id=KEY, **options)
    return {**headers, **signature}


def test_signed_delivery_is_accepted(signing: FlaskClient, emu: Emulator) -> None:
    body, headers = hook()
    unsigned = {k: v for k, v in headers.items() if k != "X-Gitlab-Token"}
    response = signing.post("/", data=body, headers=signed(body, unsigned))
    assert response.status_code == 202, response.get_json()
    assert len(creates(emu)) == 1


@pytest.mark.parametrize(
    ("headers_for", "message"),
    [
        (lambda body, headers: headers, "missing webhook-signature"),
        (lambda body, headers: signed(b"{}", headers), "does not match"),
        (
            lambda body, headers: signed(
                body, headers, timestamp=datetime.now(tz=UTC) - timedelta(minutes=6)
            ),
            "more than 5 minutes old",
        ),
        (
            lambda body, headers: {**signed(body, headers), "webhook-id": "replayed-id"},
            "does not match",
        ),
    ],
    ids=["missing", "wrong", "stale", "replayed-under-another-id"],
)
def test_unverified_signed_delivery_is_refused(
    signing: FlaskClient, emu: Emulator, headers_for: Any, message: str
) -> None:
    """With a signing token set, the plain token alone no longer passes."""
    body, headers = hook()
    response = signing.post("/", data=body, headers=headers_for(body, headers))
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert emu.requests() == []


def test_token_with_any_character_is_taken_whole(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """GitLab's secret token is free text; before, spaces and commas split it into several."""
    token = "deploy token, v2 'prod'"
    monkeypatch.setenv("GITLAB_WEBHOOK_TOKEN", token)
    client = make_client("webhook")
    body, headers = hook()
    for part in ("deploy", "token", "v2 'prod'"):
        response = client.post("/", data=body, headers=headers | {"X-Gitlab-Token": part})
        assert response.status_code == 401
    assert emu.requests() == []
    response = client.post("/", data=body, headers=headers | {"X-Gitlab-Token": token})
    assert response.status_code in (200, 202), response.get_json()
