"""Probes: `GET /healthz` (alive; no configuration, no upstream call) and `GET /readyz`."""

from __future__ import annotations

import pytest

from emulator import Emulator
from health import INBOUND_SECRETS, missing_settings
from helpers import WEBHOOK_SECRET, bare_settings, function_env, make_client

IAM_PASSWORD = [
    "OS_USERNAME",
    "OS_PASSWORD",
    "OS_USER_DOMAIN_NAME",
    "OS_PROJECT_ID or OS_PROJECT_NAME",
]
ANY_INBOUND_SECRET = " or ".join(INBOUND_SECRETS)


def test_healthz_answers_without_any_configuration(bare_env: None) -> None:
    response = make_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_makes_no_upstream_call(env: dict[str, str], emu: Emulator) -> None:
    client = make_client()
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert emu.requests() == []


def test_readyz_when_configured(env: dict[str, str], emu: Emulator) -> None:
    response = make_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_readyz_names_every_missing_variable(bare_env: None) -> None:
    response = make_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "not_ready",
        "missing": [*IAM_PASSWORD, ANY_INBOUND_SECRET],
    }


def test_readyz_never_shows_values(bare_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_PASSWORD", "very-secret-password")
    monkeypatch.setenv("WEBHOOK_TOKEN", "very-secret-token")
    response = make_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["missing"] == [
        "OS_USERNAME",
        "OS_USER_DOMAIN_NAME",
        "OS_PROJECT_ID or OS_PROJECT_NAME",
    ]
    assert "very-secret" not in response.get_data(as_text=True)


def test_readyz_reports_an_invalid_setting_by_name(
    bare_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_tooshort-value")
    response = make_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert "WEBHOOK_SECRET" in body["invalid"]
    assert "tooshort-value" not in response.get_data(as_text=True)


def test_other_get_paths(bare_env: None) -> None:
    client = make_client()
    for path in ("/", "/health", "/healthz/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"] == "not_found"
    # the status endpoint is behind the events' authentication: none configured here
    assert client.get("/backups/123").status_code == 401
    assert client.put("/healthz").status_code == 405


def test_aksk_credentials_need_both_keys_and_the_project_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = bare_settings(monkeypatch, OS_ACCESS_KEY="AK123", WEBHOOK_SECRET=WEBHOOK_SECRET)
    assert missing_settings(settings) == ["OS_SECRET_KEY", "OS_PROJECT_ID"]
    settings = bare_settings(
        monkeypatch,
        OS_ACCESS_KEY="AK123",
        OS_SECRET_KEY="SK456",
        OS_PROJECT_ID="619d3e78f61b4be68bc5aa0b59edcf7b",
        WEBHOOK_TOKEN="a-token",
    )
    assert missing_settings(settings) == []


def test_project_name_is_enough_for_password_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = bare_settings(
        monkeypatch,
        OS_USERNAME="demo",
        OS_PASSWORD="pw",
        OS_DOMAIN_NAME="OTC-EU-DE-00000000001000000001",
        OS_PROJECT_NAME="eu-de",
        GITHUB_WEBHOOK_SECRET="gh-secret",
    )
    assert missing_settings(settings) == []


def test_callback_url_without_callback_secret_is_incomplete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = function_env("http://127.0.0.1:9")
    del env["CALLBACK_SECRET"]
    settings = bare_settings(monkeypatch, **env, CALLBACK_URL="https://ci.example.com/hook")
    assert missing_settings(settings) == ["CALLBACK_SECRET"]
