"""Secrets from files, several secrets at once (rotation: <NAME>_PREVIOUS, or one per line),
secrets with any character, and ALLOWED_INSTANCES (403)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, cast

import pytest
from standardwebhooks import Webhook

from config import SECRET_FILE_FIELDS, load_settings
from emulator import Emulator
from emulator.receiver import CallbackReceiver
from errors import ConfigurationError
from helpers import (
    CALLBACK_SECRET,
    INSTANCE,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    event,
    make_client,
    sign,
)

NEW_SECRET = "whsec_" + base64.b64encode(b"the-new-inbound-secret-2026-0001").decode()
NEW_CALLBACK_SECRET = "whsec_" + base64.b64encode(b"the-new-callback-secret-2026-001").decode()
STRANGER = "whsec_" + base64.b64encode(b"nobody-configured-this-secret-01").decode()
OTHER_INSTANCE = "0123456789abcdef0123456789abcdefin07"


pytestmark = pytest.mark.usefixtures("bare_env")


def answer(response: Any) -> dict[str, Any]:
    return cast(dict[str, Any], response.get_json())


def secret_file(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


# --------------------------------------------------------------------------------------
# Secrets from files


@pytest.mark.parametrize("field", SECRET_FILE_FIELDS)
def test_every_secret_can_come_from_a_file(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whsec = ("webhook_secret", "callback_secret", "gitlab_webhook_signing_token")
    value = WEBHOOK_SECRET if field.removesuffix("_previous") in whsec else "s3cr3t-value-1"
    monkeypatch.setenv(f"{field.upper()}_FILE", secret_file(tmp_path, field, value + "\n"))
    secret = getattr(load_settings(), field)
    assert secret is not None and secret.get_secret_value() == value  # newline stripped


def test_both_variable_and_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", "from-the-environment")
    monkeypatch.setenv("WEBHOOK_TOKEN_FILE", secret_file(tmp_path, "t", "from-the-file"))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.message == (
        "invalid configuration: set WEBHOOK_TOKEN or WEBHOOK_TOKEN_FILE, not both"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read"), ("", "the file is empty"), ("\n  \n", "the file is empty")],
)
def test_unusable_secret_file_names_the_variable_not_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, problem: str
) -> None:
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("OS_PASSWORD_FILE", str(path))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.message.startswith("invalid configuration: OS_PASSWORD_FILE: ")
    assert problem in caught.value.message


def test_secret_file_with_a_bad_value_is_reported_like_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLBACK_SECRET_FILE", secret_file(tmp_path, "c", "not-a-whsec"))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "CALLBACK_SECRET: must be a Standard Webhooks secret" in caught.value.message
    assert "not-a-whsec" not in caught.value.message


def test_function_reads_its_secrets_from_files(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, tmp_path: Path
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.delenv("OS_PASSWORD")
    monkeypatch.setenv("WEBHOOK_SECRET_FILE", secret_file(tmp_path, "w", WEBHOOK_SECRET + "\n"))
    monkeypatch.setenv("OS_PASSWORD_FILE", secret_file(tmp_path, "p", "demo-password\n"))
    body = event()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 202, answer(response)


def test_function_reports_a_missing_secret_file_as_configuration_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, tmp_path: Path
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.setenv("WEBHOOK_SECRET_FILE", str(tmp_path / "absent"))
    body = event()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 500
    assert answer(response)["error"] == "configuration_error"
    assert "WEBHOOK_SECRET_FILE: cannot read" in answer(response)["message"]
    assert emu.requests() == []


# --------------------------------------------------------------------------------------
# Rotation: several secrets at once


def test_rotating_secrets_take_previous_and_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each value whole; the one being retired in <NAME>_PREVIOUS, or one value per line."""
    monkeypatch.setenv("WEBHOOK_SECRET", NEW_SECRET)
    monkeypatch.setenv("WEBHOOK_SECRET_PREVIOUS", WEBHOOK_SECRET)
    monkeypatch.setenv("WEBHOOK_TOKEN", "token-new\ntoken-old")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "gh new, with spaces")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET_PREVIOUS", "gh-old")
    monkeypatch.setenv("GITLAB_WEBHOOK_TOKEN", "gl-new\r\ngl-old")
    monkeypatch.setenv("CALLBACK_SECRET", NEW_CALLBACK_SECRET)
    monkeypatch.setenv("CALLBACK_SECRET_PREVIOUS", CALLBACK_SECRET)
    settings = load_settings()
    assert settings.secrets("webhook_secret") == [NEW_SECRET, WEBHOOK_SECRET]
    assert settings.secrets("webhook_token") == ["token-new", "token-old"]
    assert settings.secrets("github_webhook_secret") == ["gh new, with spaces", "gh-old"]
    assert settings.secrets("gitlab_webhook_token") == ["gl-new", "gl-old"]
    assert settings.secrets("callback_secret") == [NEW_CALLBACK_SECRET, CALLBACK_SECRET]
    assert settings.secrets("gitlab_webhook_signing_token") == []
    values = set(settings.secret_values())
    assert {"token-new", "token-old", "gh-old", "gl-new", NEW_SECRET, WEBHOOK_SECRET} <= values
    assert "gh new, with spaces" in values


@pytest.mark.parametrize("value", ["It's a Secret to Everybody", "a,b", " padded ", 'q"uote\\ ünï'])
def test_github_and_gitlab_secrets_are_taken_whole(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", value)
    monkeypatch.setenv("GITLAB_WEBHOOK_TOKEN", value)
    settings = load_settings()
    assert settings.secrets("github_webhook_secret") == [value]
    assert settings.secrets("gitlab_webhook_token") == [value]


def test_one_secret_per_line_in_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = secret_file(tmp_path, "github", "new secret, with a comma\nold secret\n")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET_FILE", path)
    monkeypatch.setenv("WEBHOOK_SECRET_PREVIOUS_FILE", secret_file(tmp_path, "w", WEBHOOK_SECRET))
    settings = load_settings()
    assert settings.secrets("github_webhook_secret") == ["new secret, with a comma", "old secret"]
    assert settings.secrets("webhook_secret") == [WEBHOOK_SECRET]


def test_old_space_separated_standard_webhooks_list_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The form before 0.x: refused loudly at start, naming the new form, never half-read."""
    monkeypatch.setenv("WEBHOOK_SECRET", f"{NEW_SECRET} {WEBHOOK_SECRET}")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "WEBHOOK_SECRET: must be a Standard Webhooks secret" in caught.value.message
    assert "<NAME>_PREVIOUS" in caught.value.message
    assert NEW_SECRET not in caught.value.message


def test_passwords_are_never_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_PASSWORD", "correct horse, battery staple")
    settings = load_settings()
    assert settings.os_password is not None
    assert settings.os_password.get_secret_value() == "correct horse, battery staple"


def test_one_malformed_secret_in_a_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", f"{NEW_SECRET}\nwhsec_short")
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET: must be a Standard Webhooks"):
        load_settings()


def test_events_signed_with_any_configured_secret_are_accepted(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", NEW_SECRET)
    monkeypatch.setenv("WEBHOOK_SECRET_PREVIOUS", WEBHOOK_SECRET)
    client = make_client()
    for number, secret in enumerate((NEW_SECRET, WEBHOOK_SECRET)):
        body = event(id=f"deploy-rotation-{number}", instance_id=f"{number + 1:032x}in07")
        response = client.post("/", data=body, headers=sign(body, secret=secret))
        assert response.status_code == 202, answer(response)
    body = event(id="deploy-stranger")
    response = client.post("/", data=body, headers=sign(body, secret=STRANGER))
    assert response.status_code == 401
    assert answer(response)["message"] == "the webhook signature does not match the body"
    calls = [f"{r.method} {r.path.rsplit('/', 1)[-1]}" for r in emu.requests()]
    # one token, and for each event its look-up and create; nothing for the stranger
    # one token; for each event the look-up and the pre-check (side by side), then the create
    named = [
        c if not c.startswith("GET ") or c == "GET backups" else "GET {instance}" for c in calls
    ]
    assert named[0] == "POST tokens" and len(named) == 7
    for event_calls in (named[1:4], named[4:7]):
        assert sorted(event_calls[:2]) == ["GET backups", "GET {instance}"]
        assert event_calls[2] == "POST create"


def test_bearer_tokens_rotate(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.setenv("WEBHOOK_TOKEN", "token-2026-new")
    monkeypatch.setenv("WEBHOOK_TOKEN_PREVIOUS", WEBHOOK_TOKEN)
    client = make_client()
    for number, token in enumerate(("token-2026-new", WEBHOOK_TOKEN)):
        body = event(id=f"deploy-token-{number}", instance_id=f"{number + 1:032x}in07")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        assert client.post("/", data=body, headers=headers).status_code == 202
    headers = {"Content-Type": "application/json", "Authorization": "Bearer token-2026"}
    response = client.post("/", data=event(), headers=headers)  # a prefix is not a token
    assert response.status_code == 401
    assert answer(response)["message"] == "the bearer token is not valid"


def test_callbacks_carry_one_signature_per_callback_secret(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("CALLBACK_SECRET", f"{NEW_CALLBACK_SECRET}\n{CALLBACK_SECRET}")
    with CallbackReceiver(CALLBACK_SECRET) as old, CallbackReceiver(NEW_CALLBACK_SECRET) as new:
        client = make_client()
        for number, receiver in enumerate((old, new)):
            body = event(
                id=f"deploy-callback-{number}",
                instance_id=f"{number + 1:032x}in07",
                callback_url=receiver.url + "/hook",
            )
            response = client.post("/", data=body, headers=sign(body))
            assert response.status_code == 202, answer(response)
            assert answer(response)["callbacks"]["backup.started"]["delivered"] is True
        for receiver, secret in ((old, CALLBACK_SECRET), (new, NEW_CALLBACK_SECRET)):
            (callback,) = receiver.wait_for(1)
            assert callback.verified
            assert len(callback.headers["webhook-signature"].split(" ")) == 2
            Webhook(secret).verify(callback.body.decode(), callback.headers)


# --------------------------------------------------------------------------------------
# Authorization: ALLOWED_INSTANCES


def test_event_for_a_foreign_instance_is_403(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("ALLOWED_INSTANCES", f"{INSTANCE}, {OTHER_INSTANCE[:-2]}08")
    body = event(instance_id=OTHER_INSTANCE)
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 403
    assert answer(response) == {
        "error": "forbidden",
        "message": f"instance {OTHER_INSTANCE} is not in ALLOWED_INSTANCES",
    }
    assert emu.requests() == []


def test_event_for_an_allowed_instance_passes(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("ALLOWED_INSTANCES", f"{OTHER_INSTANCE},{INSTANCE}")
    body = event()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 202, answer(response)


def test_foreign_instance_with_a_refused_callback_is_refused_without_upstream(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("ALLOWED_INSTANCES", INSTANCE)
    body = event(instance_id=OTHER_INSTANCE, callback_url="https://169.254.169.254/")
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code in (400, 403)
    assert emu.requests() == []
