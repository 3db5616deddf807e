"""Settings: the variables of the documented table, and one clear message for each mistake."""

from __future__ import annotations

import re

import pytest

from config import SECRET_FILE_FIELDS, Settings, load_settings
from errors import ConfigurationError
from helpers import CALLBACK_SECRET, ROOT, WEBHOOK_SECRET

pytestmark = pytest.mark.usefixtures("bare_env")


def test_defaults_point_at_otc_eu_de() -> None:
    settings = load_settings()
    assert settings.auth_url == "https://iam.eu-de.otc.t-systems.com/v3"
    assert settings.api_endpoint == "https://gaussdb-mysql.eu-de.otc.t-systems.com"
    assert settings.webhook_secret is None and settings.webhook_token is None


def test_region_moves_both_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_REGION_NAME", "eu-nl")
    settings = load_settings()
    assert settings.auth_url == "https://iam.eu-nl.otc.t-systems.com/v3"
    assert settings.api_endpoint == "https://gaussdb-mysql.eu-nl.otc.t-systems.com"


def test_overrides_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_AUTH_URL", "http://127.0.0.1:9/v3/")
    monkeypatch.setenv("GAUSSDB_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("OS_DOMAIN_NAME", "OTC-EU-DE-1")
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", "CI.example.com, 10.0.0.5 ,")
    monkeypatch.setenv("ALLOWED_INSTANCES", "07033b125fd94a8a96896f8bcfee6ddain07")
    monkeypatch.setenv("INSTANCE_MAP", '{"production": "07033b125fd94a8a96896f8bcfee6ddain07"}')
    monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    settings = load_settings()
    assert settings.auth_url == "http://127.0.0.1:9/v3"
    assert settings.api_endpoint == "http://127.0.0.1:9"
    assert settings.os_user_domain_name == "OTC-EU-DE-1"
    assert settings.callback_allowed_hosts == ["ci.example.com", "10.0.0.5"]
    assert settings.allowed_instances == ["07033b125fd94a8a96896f8bcfee6ddain07"]
    assert settings.instance_map == {"production": "07033b125fd94a8a96896f8bcfee6ddain07"}
    assert WEBHOOK_SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OS_PROJECT_ID", "not-a-project", "OS_PROJECT_ID"),
        ("API_TIMEOUT_SECONDS", "soon", "API_TIMEOUT_SECONDS"),
        ("API_TIMEOUT_SECONDS", "-5", "API_TIMEOUT_SECONDS"),
        ("MAX_BODY_BYTES", "-1", "MAX_BODY_BYTES"),
        ("INSTANCE_MAP", "{not json", "INSTANCE_MAP: is not valid JSON"),
        ("WEBHOOK_SECRET", "whsec_short", "WEBHOOK_SECRET: must be a Standard Webhooks secret"),
        ("CALLBACK_SECRET", "plain text!", "CALLBACK_SECRET: must be a Standard Webhooks secret"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_malformed_setting_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert expected in caught.value.message
    assert value not in caught.value.message


def test_several_mistakes_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_PROJECT_ID", "x")
    monkeypatch.setenv("CALLBACK_SECRET", "y")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "OS_PROJECT_ID" in caught.value.message
    assert "CALLBACK_SECRET" in caught.value.message


def test_secret_values_lists_every_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_PASSWORD", "pw-123456")
    monkeypatch.setenv("CALLBACK_SECRET", CALLBACK_SECRET)
    assert set(load_settings().secret_values()) == {
        "pw-123456",
        CALLBACK_SECRET,
        CALLBACK_SECRET.removeprefix("whsec_"),  # the key part alone is as secret
    }


def test_configuration_table_matches_settings() -> None:
    """Every setting is in the table of docs/configuration.md, and the table names no others."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    section = page.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)`", section, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields} | {"OS_DOMAIN_NAME"}
    expected |= {f"{name.upper()}_FILE" for name in SECRET_FILE_FIELDS}
    assert documented == expected
