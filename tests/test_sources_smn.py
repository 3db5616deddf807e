"""SMN HTTP(S) subscriptions on ``webhook``, against a local SMN endpoint with a self-made key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from emulator import Emulator
from helpers import INSTANCE
from senders import (
    STAGING,
    TOPIC,
    SmnEndpoint,
    make_client,
    signing_key,
    smn_endpoint,
    use_sources_env,
)


@pytest.fixture
def smn() -> Iterator[SmnEndpoint]:
    with smn_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def env(emu: Emulator, smn: SmnEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.put_instance(STAGING)
    use_sources_env(monkeypatch, emu.url, smn.url)


@pytest.fixture
def client(env: None) -> FlaskClient:
    return make_client("webhook")


def post(client: FlaskClient, message: dict[str, Any], kind: str | None = None) -> Any:
    headers = {
        "Content-Type": "application/json",
        "X-SMN-MESSAGE-TYPE": kind or message["type"],
        "X-SMN-MESSAGE-ID": message.get("message_id", ""),
        "X-SMN-TOPIC-URN": TOPIC,
    }
    return client.post("/", data=json.dumps(message), headers=headers)


def event(**fields: Any) -> str:
    return json.dumps(
        {"event": "pre-deploy", "id": "deploy-4711", "instance_id": INSTANCE, **fields}
    )


def creates(emu: Emulator) -> list[dict[str, Any]]:
    return [r.body for r in emu.requests() if r.path.endswith("/backups/create")]


def ago(**delta: float) -> str:
    return (datetime.now(tz=UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_notification_backs_up(client: FlaskClient, emu: Emulator, smn: SmnEndpoint) -> None:
    response = post(client, smn.message(message=event()))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["trigger_id"] == "deploy-4711"
    assert smn.requests == [smn.cert_path]


def test_notification_without_subject_is_signed_without_it(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    response = post(client, smn.message(message=event(), subject=None))
    assert response.status_code == 202, response.get_json()


def test_the_certificate_is_fetched_once(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    first = post(client, smn.message(message=event(), message_id="m-1"))
    second = post(client, smn.message(message=event(instance_id=STAGING), message_id="m-2"))
    assert (first.status_code, second.status_code) == (202, 202)
    assert smn.requests == [smn.cert_path]


def test_subscription_is_confirmed(client: FlaskClient, emu: Emulator, smn: SmnEndpoint) -> None:
    response = post(client, smn.message("SubscriptionConfirmation"))
    assert response.status_code == 200
    assert response.get_json() == {
        "note": "subscription_confirmed",
        "message": f"subscribed to {TOPIC}",
    }
    assert smn.requests == [smn.cert_path, smn.confirm_url().removeprefix(smn.url)]
    assert emu.requests() == []


def test_unsubscribe_confirmation_is_only_noted(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    response = post(client, smn.message("UnsubscribeConfirmation"))
    assert response.status_code == 200
    assert response.get_json()["note"] == "unsubscribed"
    assert smn.requests == [smn.cert_path]  # verified, nothing confirmed
    assert emu.requests() == []


def test_invalid_event_in_a_notification_is_named(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    response = post(client, smn.message(message=event(name="1x")))
    assert response.status_code == 400
    assert response.get_json()["fields"][0]["field"] == "message.name"
    assert emu.requests() == []


@pytest.fixture
def foreign() -> Iterator[SmnEndpoint]:
    """Another server with a valid key: what an attacker points the URLs at."""
    with smn_endpoint() as endpoint:
        yield endpoint


def test_certificate_on_a_foreign_host_is_not_fetched(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint, foreign: SmnEndpoint
) -> None:
    response = post(client, smn.message(message=event(), signing_cert_url=foreign.cert_url))
    assert response.status_code == 401
    assert "signing_cert_url must be on the SMN endpoint" in response.get_json()["message"]
    assert foreign.requests == [] and smn.requests == []
    assert emu.requests() == []


@pytest.mark.parametrize(
    "url",
    [
        "https://smn.eu-de.otc.t-systems.com.evil.example/smn/x.pem",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_certificate_url_must_be_the_endpoint(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint, url: str
) -> None:
    response = post(client, smn.message(message=event(), signing_cert_url=url))
    assert response.status_code == 401
    assert smn.requests == []
    assert emu.requests() == []


def test_confirmation_url_on_a_foreign_host_is_not_visited(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint, foreign: SmnEndpoint
) -> None:
    message = smn.message("SubscriptionConfirmation", subscribe_url=foreign.confirm_url())
    response = post(client, message)
    assert response.status_code == 401
    assert "subscribe_url must be on the SMN endpoint" in response.get_json()["message"]
    assert foreign.requests == [] and smn.requests == []
    assert emu.requests() == []


@pytest.mark.parametrize("kind", ["Notification", "SubscriptionConfirmation"])
def test_unlisted_topic_is_refused_before_any_fetch(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint, kind: str
) -> None:
    other = "urn:smn:eu-de:0a1b2c3d4e5f60718293a4b5c6d7e8f9:someone-elses-topic"
    response = post(client, smn.message(kind, topic_urn=other))
    assert response.status_code == 401
    assert "is not in SMN_TOPIC_URNS" in response.get_json()["message"]
    assert smn.requests == []
    assert emu.requests() == []


def test_without_topic_list_every_message_is_refused(
    env: None, monkeypatch: pytest.MonkeyPatch, emu: Emulator, smn: SmnEndpoint
) -> None:
    monkeypatch.delenv("SMN_TOPIC_URNS")
    response = post(make_client("webhook"), smn.message(message=event()))
    assert response.status_code == 401
    assert "SMN_TOPIC_URNS" in response.get_json()["message"]
    assert smn.requests == []
    assert emu.requests() == []


def forged(smn: SmnEndpoint) -> dict[str, Any]:
    """Signed by another key than the one the endpoint's certificate holds."""
    message = smn.message(message=event())
    return {**message, "signature": signing_key(1).sign(message)}


def tampered(smn: SmnEndpoint) -> dict[str, Any]:
    return {**smn.message(message=event()), "message": event(instance_id=STAGING)}


SIGNATURE_FAILURES = [
    (lambda smn: {**smn.message(message=event()), "signature": None}, "no signature"),
    (lambda smn: {**smn.message(message=event()), "signature": ""}, "no signature"),
    (forged, "does not match"),
    (tampered, "does not match"),
    (lambda smn: {**smn.message(message=event()), "signature": "%%%"}, "not base64"),
    (lambda smn: smn.message(message=event(), timestamp=ago(hours=2)), "more than an hour"),
    (lambda smn: smn.message(message=event(), timestamp=ago(minutes=-10)), "in the future"),
    (lambda smn: smn.message(message=event(), timestamp="yesterday"), "ISO 8601"),
    (lambda smn: smn.message(message=event(), signature_version="v2"), "v1"),
]


@pytest.mark.parametrize(
    ("make", "message"),
    SIGNATURE_FAILURES,
    ids=[
        "missing",
        "empty",
        "forged",
        "tampered",
        "not-base64",
        "stale",
        "future",
        "bad-time",
        "version",
    ],
)
def test_unverified_message_is_refused(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint, make: Any, message: str
) -> None:
    sent = {k: v for k, v in make(smn).items() if v is not None}
    response = post(client, sent)
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert emu.requests() == []


def test_replayed_old_message_is_refused(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    """A message captured and sent again later: its signed time gives it away."""
    captured = smn.message(message=event(), timestamp=ago(minutes=61))
    response = post(client, captured)
    assert response.status_code == 401
    assert emu.requests() == []


def test_header_type_must_match_the_signed_type(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    response = post(client, smn.message(message=event()), kind="SubscriptionConfirmation")
    assert response.status_code == 400
    assert "X-SMN-MESSAGE-TYPE" in response.get_json()["message"]
    assert emu.requests() == []


def test_missing_certificate_is_refused(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    response = post(client, smn.message(message=event(), signing_cert_url=smn.url + "/smn/x.pem"))
    assert response.status_code == 401
    assert "SMN answered 404" in response.get_json()["message"]
    assert emu.requests() == []


def test_redirects_are_not_followed(client: FlaskClient, emu: Emulator, smn: SmnEndpoint) -> None:
    response = post(
        client, smn.message(message=event(), signing_cert_url=smn.url + "/smn/moved.pem")
    )
    assert response.status_code == 401
    assert "SMN answered 302" in response.get_json()["message"]
    assert smn.requests == ["/smn/moved.pem"]
    assert emu.requests() == []


def test_unreachable_smn_is_503(
    env: None, monkeypatch: pytest.MonkeyPatch, emu: Emulator, smn: SmnEndpoint
) -> None:
    """SMN retries what fails: an endpoint that is down for a moment costs nothing."""
    monkeypatch.setenv("SMN_ENDPOINT", "http://127.0.0.1:9")
    message = smn.message(message=event(), signing_cert_url="http://127.0.0.1:9/smn/c.pem")
    response = post(make_client("webhook"), message)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert emu.requests() == []
