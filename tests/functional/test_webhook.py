"""The ``webhook`` entry point through functions-framework's app, against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from standardwebhooks import Webhook
from werkzeug.test import TestResponse

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import (
    CALLBACK_SECRET,
    INSTANCE,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    creates,
    env_fixture,
    event,
    js,
    load_sample,
    make_client,
    sign,
)

env = env_fixture(DEADLINE_SECONDS="2", CALLBACK_RETRY_SECONDS="0.5")


def api_calls(emu: Emulator) -> list[str]:
    """Every request the function made to IAM or the API, as ``METHOD path``."""
    return [f"{r.method} {r.path}" for r in emu.requests()]


def post(client: FlaskClient, body: bytes, headers: dict[str, str] | None = None) -> TestResponse:
    return client.post("/", data=body, headers=sign(body) if headers is None else headers)


def test_signed_event_creates_backup_and_calls_back(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    body = event(
        name="backup-1", description="Manual backup", callback_url=receiver.url + "/hooks/backup"
    )
    response = post(client, body)

    assert response.status_code == 202, js(response)
    answer = js(response)
    assert answer["trigger_id"] == "deploy-4711"
    assert answer["backup"]["name"] == "backup-1"
    assert answer["backup"]["status"] == "BUILDING"
    assert answer["backup"]["instance_id"] == INSTANCE
    assert answer["created"] is True
    assert answer["callbacks"] == {"backup.started": {"delivered": True}}
    (sent,) = creates(emu)
    assert sent["instance_id"] == INSTANCE
    assert sent["name"] == "backup-1"
    assert sent["description"].startswith("Manual backup [pd:")

    (callback,) = receiver.wait_for(1)
    assert callback.path == "/hooks/backup"
    assert callback.verified
    Webhook(CALLBACK_SECRET).verify(callback.body.decode(), callback.headers)  # as the docs say
    assert callback.payload["type"] == "backup.started"
    assert callback.payload["job_id"] == answer["job_id"]
    assert callback.payload["instance_id"] == INSTANCE
    assert callback.payload["trigger_id"] == "deploy-4711"
    assert callback.payload["backup"] == answer["backup"]
    assert callback.headers["webhook-id"].startswith("msg_")


def test_sample_event_works_as_shipped(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    document = json.loads(load_sample("generic-pre-deploy.json"))
    document["callback_url"] = receiver.url + "/hooks/backup"
    response = post(client, json.dumps(document).encode())
    assert response.status_code == 202, js(response)
    assert receiver.wait_for(1)[0].payload["job_id"] == js(response)["job_id"]


def test_name_and_description_are_derived_when_absent(client: FlaskClient, emu: Emulator) -> None:
    response = post(client, event(id="release 2026.11/#42"))
    assert response.status_code == 202, js(response)
    (sent,) = creates(emu)
    assert sent["name"].startswith("predeploy-release-2026-11-42-")
    assert "release 2026.11/_42" in sent["description"]
    assert js(response)["backup"]["name"] == sent["name"]


def test_without_callback_url_no_callback_is_attempted(
    client: FlaskClient, receiver: CallbackReceiver
) -> None:
    response = post(client, event())
    assert response.status_code == 202
    assert "callback" not in js(response)
    assert receiver.received == []


def test_callback_url_falls_back_to_setting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, receiver: CallbackReceiver
) -> None:
    monkeypatch.setenv("CALLBACK_URL", receiver.url + "/default")
    client = make_client()
    response = post(client, event())
    assert response.status_code == 202
    assert receiver.wait_for(1)[0].path == "/default"


def test_bearer_token_is_accepted_when_configured(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    client = make_client()
    response = post(
        client,
        event(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"},
    )
    assert response.status_code == 202, js(response)
    assert len(creates(emu)) == 1


INVALID = [
    ({"name": "ab1"}, "name", "4 to 64 characters"),
    ({"name": "b" * 65}, "name", "4 to 64 characters"),
    ({"name": "1backup"}, "name", "start with a letter"),
    ({"name": "backup.1"}, "name", "letters, digits, hyphens"),
    ({"name": "bäckup-1"}, "name", "letters, digits, hyphens"),
    ({"description": "d" * 257}, "description", "at most 256"),
    *[({"description": f"x{char}y"}, "description", "must not contain") for char in ">!<\"&'=\r\n"],
    ({"instance_id": "07033b125fd94a8a96896f8bcfee6dda"}, "instance_id", "in' and 2 digits"),
    ({"instance_id": "07033B125FD94A8A96896F8BCFEE6DDAIN07"}, "instance_id", "lowercase"),
    ({"instance_id": None}, "instance_id", "is required"),
    ({"event": "post-deploy"}, "event", "'pre-deploy'"),
    ({"event": None}, "event", "is required"),
    ({"instance": INSTANCE}, "instance", "not a known field"),
    ({"id": ""}, "id", "must not be empty"),
    ({"name": 7}, "name", "must be a string"),
    ({"callback_url": "http://ci.example.com/hook"}, "callback_url", "https"),
    ({"callback_url": "https://user:pw@ci.example.com/hook"}, "callback_url", "user information"),
    ({"callback_url": "ftp://ci.example.com/hook"}, "callback_url", "https"),
]


@pytest.mark.parametrize(("fields", "field", "rule"), INVALID)
def test_invalid_event_is_refused_naming_the_field(
    client: FlaskClient, emu: Emulator, fields: dict[str, Any], field: str, rule: str
) -> None:
    response = post(client, event(**fields))

    assert response.status_code == 400
    assert js(response)["error"] == "invalid_event"
    named = {f["field"]: f["rule"] for f in js(response)["fields"]}
    assert field in named, named
    assert rule in named[field]
    assert api_calls(emu) == []


def test_every_invalid_field_is_named(client: FlaskClient, emu: Emulator) -> None:
    response = post(client, event(name="9", description="<b>", instance_id="x"))
    assert response.status_code == 400
    assert {f["field"] for f in js(response)["fields"]} == {"name", "description", "instance_id"}
    assert api_calls(emu) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object")],
)
def test_malformed_body_is_refused(
    client: FlaskClient, emu: Emulator, body: bytes, message: str
) -> None:
    response = client.post("/", data=body, headers=sign(body))
    assert response.status_code == 400
    assert message in js(response)["message"]
    assert api_calls(emu) == []


def test_body_that_is_not_utf8_cannot_be_signed(client: FlaskClient, emu: Emulator) -> None:
    response = client.post("/", data=b"\xff\xfe{}", headers=sign(b"{}"))
    assert response.status_code == 401
    assert api_calls(emu) == []


def shifted(minutes: int) -> dict[str, str]:
    return sign(event(), timestamp=datetime.now(tz=UTC) + timedelta(minutes=minutes))


OTHER_SECRET = "whsec_" + "b3RoZXItc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="

# Header factories, called when the test runs: a timestamp taken at collection would age.
UNAUTHENTICATED: list[tuple[Callable[[], dict[str, str]], str]] = [
    (lambda: {"Content-Type": "application/json"}, "not authenticated"),
    (lambda: sign(event(), secret=OTHER_SECRET), "does not match"),
    (lambda: sign(event(name="other-name")), "does not match"),  # another body's signature
    (lambda: shifted(-6), "more than 5 minutes old"),
    (lambda: shifted(+6), "future"),
    (lambda: {**sign(event()), "webhook-signature": "v1,not-base64!"}, "malformed"),
    (lambda: {**sign(event()), "webhook-signature": "garbage"}, "malformed"),
    (lambda: {**sign(event()), "webhook-timestamp": "yesterday"}, "Unix time"),
    (lambda: {k: v for k, v in sign(event()).items() if k != "webhook-id"}, "webhook-id"),
    (
        lambda: {"Content-Type": "application/json", "Authorization": "Bearer wrong"},
        "not authenticated",
    ),
]


@pytest.mark.parametrize(("headers", "message"), UNAUTHENTICATED)
def test_unauthenticated_event_is_refused(
    client: FlaskClient, emu: Emulator, headers: Callable[[], dict[str, str]], message: str
) -> None:
    response = client.post("/", data=event(), headers=headers())

    assert response.status_code == 401
    assert js(response)["error"] == "unauthorized"
    assert message in js(response)["message"]
    assert api_calls(emu) == []


def test_wrong_bearer_token_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    client = make_client()
    response = client.post(
        "/",
        data=event(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer wrong-token"},
    )
    assert response.status_code == 401
    assert js(response)["message"] == "the bearer token is not valid"
    assert api_calls(emu) == []


def test_without_any_secret_every_event_is_refused(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    client = make_client()
    response = post(client, event())
    assert response.status_code == 401
    assert "unsigned events are refused" in js(response)["message"]
    assert api_calls(emu) == []


def test_non_json_content_type_is_415(client: FlaskClient, emu: Emulator) -> None:
    body = event()
    response = client.post("/", data=body, headers={**sign(body), "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/json" in js(response)["message"]
    assert api_calls(emu) == []


def test_oversized_body_is_413(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    client = make_client()
    body = event(description="d" * 200)
    response = client.post("/", data=body, headers=sign(body))
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in js(response)["message"]
    assert api_calls(emu) == []


def test_other_methods_are_405(client: FlaskClient) -> None:
    response = client.put("/", data=event(), headers=sign(event()))
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_unknown_instance_passes_the_api_error_through(client: FlaskClient, emu: Emulator) -> None:
    response = post(client, event(instance_id="0123456789abcdef0123456789abcdefin07"))
    assert response.status_code == 404
    assert js(response)["error"] == "upstream_error"
    assert js(response)["error_code"] == "DBS.200002"
    assert js(response)["error_msg"]
    assert js(response)["request_id"]


def test_instance_busy_past_the_deadline_is_503_with_retry_after(
    client: FlaskClient, emu: Emulator
) -> None:
    emu.configure(backup_seconds=30)
    assert post(client, event(id="first")).status_code == 202
    response = post(client, event(id="second"))
    assert response.status_code == 503
    assert js(response)["error"] == "instance_busy"
    assert js(response)["instance_status"] == "BACKING UP"
    assert int(response.headers["Retry-After"]) > 0
    looks = [r for r in emu.requests() if r.method == "GET" and "/instances/" in r.path]
    assert len(looks) >= 2  # the second trigger kept asking within its deadline
    assert len(creates(emu)) == 1  # and never sent a create the API would refuse


def test_one_token_for_many_events(client: FlaskClient, emu: Emulator) -> None:
    instances = [i for i in emu.config.instances][:5]
    for number, instance in enumerate(instances):
        response = post(client, event(id=f"deploy-{number}", instance_id=instance))
        assert response.status_code == 202, js(response)
    calls = api_calls(emu)
    assert calls.count("POST /v3/auth/tokens") == 1
    assert len(creates(emu)) == 5


def test_revoked_token_is_renewed_once(client: FlaskClient, emu: Emulator) -> None:
    instances = list(emu.config.instances)
    assert post(client, event(id="a", instance_id=instances[0])).status_code == 202
    emu.revoke_tokens()
    response = post(client, event(id="b", instance_id=instances[1]))
    assert response.status_code == 202, js(response)
    assert api_calls(emu).count("POST /v3/auth/tokens") == 2


def test_missing_credentials_name_the_variable(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("OS_PASSWORD")
    client = make_client()
    response = post(client, event())
    assert response.status_code == 500
    assert js(response)["error"] == "configuration_error"
    assert "OS_PASSWORD" in js(response)["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert api_calls(emu) == []


def test_malformed_setting_names_the_variable(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("CALLBACK_SECRET", "not-a-secret")
    client = make_client()
    response = post(client, event())
    assert response.status_code == 500
    assert "CALLBACK_SECRET" in js(response)["message"]
    assert "not-a-secret" not in response.get_data(as_text=True)
    assert api_calls(emu) == []


def test_wrong_iam_password_is_502_without_the_password(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("OS_PASSWORD", "wrong-password-123")
    client = make_client()
    response = post(client, event())
    assert response.status_code == 502
    assert js(response)["error"] == "iam_authentication_failed"
    assert "wrong-password-123" not in response.get_data(as_text=True)
    assert creates(emu) == []


def test_callback_without_callback_secret_is_refused_before_backup(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("CALLBACK_SECRET")
    client = make_client()
    response = post(client, event(callback_url="http://127.0.0.1:9/hook"))  # an allowed host
    assert response.status_code == 500
    assert "CALLBACK_SECRET" in js(response)["message"]
    assert creates(emu) == []


def test_failed_callback_keeps_the_job_id(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    receiver.status = 500
    response = post(client, event(callback_url=receiver.url + "/hook"))
    assert response.status_code == 202
    assert js(response)["job_id"]
    callback = js(response)["callbacks"]["backup.started"]
    assert callback == {"delivered": False}  # the receiver's 500 is in the log, not here


def test_responses_never_echo_secrets(client: FlaskClient, env: dict[str, str]) -> None:
    secrets = [env["OS_PASSWORD"], WEBHOOK_SECRET, env["CALLBACK_SECRET"]]
    bodies = [
        post(client, event()).get_data(as_text=True),
        post(client, event(), sign(event(), secret=OTHER_SECRET)).get_data(as_text=True),
        post(client, event(name="1")).get_data(as_text=True),
    ]
    for text in bodies:
        for secret in secrets:
            assert secret not in text
