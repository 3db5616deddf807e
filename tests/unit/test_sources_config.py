"""The settings the event sources add: their defaults and their mistakes."""

from __future__ import annotations

import pytest

from config import DEFAULT_EVENT_TYPES, load_settings
from errors import ConfigurationError

pytestmark = pytest.mark.usefixtures("bare_env")


def test_defaults() -> None:
    settings = load_settings()
    assert settings.event_types == list(DEFAULT_EVENT_TYPES)
    assert settings.smn_topic_urns == []
    assert settings.smn_hosts == [
        "smn.eu-de.otc.t-systems.com",
        "console.otc.t-systems.com",
        "console.eu-de.otc.t-systems.com",
    ]


@pytest.mark.parametrize(
    ("region", "hosts"),
    [
        ("eu-nl", ["smn.eu-nl.otc.t-systems.com", "console.otc.t-systems.com"]),
        ("eu-ch2", ["smn.eu-ch2.sc.otc.t-systems.com", "console.sc.otc.t-systems.com"]),
        (
            "sa-brazil-1",
            ["smn.sa-brazil-1.myhuaweicloud.com", "sa-brazil-1-console.huaweicloud.com"],
        ),
    ],
)
def test_region_moves_the_smn_hosts(
    monkeypatch: pytest.MonkeyPatch, region: str, hosts: list[str]
) -> None:
    monkeypatch.setenv("OS_REGION_NAME", region)
    found = load_settings().smn_hosts
    assert set(hosts) <= set(found)
    assert not any("eu-de" in host for host in found)


def test_smn_allowed_hosts_are_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMN_ALLOWED_HOSTS", " SMN-Proxy.example.com ,")
    assert load_settings().smn_hosts[-1] == "smn-proxy.example.com"


def test_lists_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_TYPES", " com.acme.deploy.* , ")
    monkeypatch.setenv("SMN_TOPIC_URNS", "urn:smn:eu-de:p:a,urn:smn:eu-de:p:b")
    monkeypatch.setenv("SMN_ENDPOINT", "http://127.0.0.1:8099/")
    settings = load_settings()
    assert settings.event_types == ["com.acme.deploy.*"]
    assert settings.smn_topic_urns == ["urn:smn:eu-de:p:a", "urn:smn:eu-de:p:b"]
    assert settings.smn_endpoint == "http://127.0.0.1:8099/"


def test_empty_event_types_keep_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_TYPES", "")
    assert load_settings().event_types == list(DEFAULT_EVENT_TYPES)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SMN_ENDPOINT", "smn.eu-de.otc.t-systems.com", "SMN_ENDPOINT: must be an absolute"),
        ("SMN_ENDPOINT", "ftp://smn.example.com", "SMN_ENDPOINT: must be an absolute"),
        ("GITLAB_WEBHOOK_SIGNING_TOKEN", "plain", "GITLAB_WEBHOOK_SIGNING_TOKEN: must be a"),
    ],
)
def test_malformed_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert expected in caught.value.message


def test_gitlab_signing_token_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "whsec_Z2l0bGFiLXNpZ25pbmctdGVzdC1rZXktMDEyMzQ1Njc="
    monkeypatch.setenv("GITLAB_WEBHOOK_SIGNING_TOKEN", token)
    settings = load_settings()
    assert token in settings.secret_values()
    assert token not in repr(settings)
