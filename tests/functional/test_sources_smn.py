"""SMN HTTP(S) subscriptions on ``webhook``, against a local SMN endpoint with a self-made key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

import events
from clients.smn import SmnClient
from config import load_settings
from emulator import Emulator
from errors import UnauthorizedError
from events import smn as events_smn
from handlers import subscriptions
from helpers import INSTANCE, SetEnv
from models import Handshake, Note, Trigger
from senders import (
    STAGING,
    TOPIC,
    SmnEndpoint,
    make_client,
    signing_key,
    smn_endpoint,
    source_settings,
)


@pytest.fixture
def smn() -> Iterator[SmnEndpoint]:
    with smn_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def env(emu: Emulator, smn: SmnEndpoint, set_env: SetEnv) -> dict[str, str]:
    emu.put_instance(STAGING)
    return set_env(**source_settings(smn.url))


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
    assert (
        "signing_cert_url must be an https URL on an SMN host of eu-de"
        in response.get_json()["message"]
    )
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
    assert (
        "subscribe_url must be an https URL on an SMN host of eu-de"
        in response.get_json()["message"]
    )
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
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, smn: SmnEndpoint
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
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, smn: SmnEndpoint
) -> None:
    """SMN retries what fails: an endpoint that is down for a moment costs nothing."""
    monkeypatch.setenv("SMN_ENDPOINT", "http://127.0.0.1:9")
    message = smn.message(message=event(), signing_cert_url="http://127.0.0.1:9/smn/c.pem")
    response = post(make_client("webhook"), message)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert emu.requests() == []


# --- the production hosts, with the documented message shapes ----------------------------------
#
# Shapes: OTC SMN user guide, "HTTP/HTTPS Message Format" (fields of each message type) and
# "Message Signature Verification" (what is signed); the URL forms from Huawei's sample
# confirmation (``https://console.<…>.com/smn/subscription/confirm?token=…&topic_urn=…&region=…
# &region_id=…``) and from public captures of real messages (Huawei Cloud sa-brazil-1:
# ``subscribe_url`` on ``sa-brazil-1-console.huaweicloud.com``, ``signing_cert_url`` on
# ``smn.sa-brazil-1.myhuaweicloud.com/smn/SMN_sa-brazil-1_<hex>.pem``). Those hosts cannot be
# served from a test, so the SMN client gets a transport that plays them (and records what it
# was asked); the rest (verification, the handler's confirmation) is the function's own code.

OTC_CERT = "https://smn.eu-de.otc.t-systems.com/smn/SMN_eu-de_94f60ccdfbee4588aa4d555935a56ba3.pem"
OTC_CONFIRM = (
    "https://console.otc.t-systems.com/smn/subscription/confirm?token=0a419ac94f80f2c62f14c01e3"
    f"4ae5dfcf6b0b92ef46241218eaae5b4cb90d5d4&topic_urn={TOPIC}&region=eu-de&region_id=eu-de"
)
BRAZIL_TOPIC = "urn:smn:sa-brazil-1:bd4140f92d7941cdb34be53d74e37ac5:alarm-testing"
BRAZIL_CERT = "https://smn.sa-brazil-1.myhuaweicloud.com/smn/SMN_sa-brazil-1_439574c9504b45589a008b0d718fad99.pem"
BRAZIL_CONFIRM = (
    "https://sa-brazil-1-console.huaweicloud.com/smn/subscription/confirm?token=bd4140f92d79"
    f"&topic_urn={BRAZIL_TOPIC}&region=sa-brazil-1&region_id=sa-brazil-1"
)


def documented(kind: str, cert_url: str, confirm_url: str, topic: str = TOPIC) -> dict[str, Any]:
    """An SMN message with the documented fields of its type, signed the documented way."""
    message: dict[str, Any] = {
        "type": kind,
        "topic_urn": topic,
        "message_id": "54bb04eddfc842e9b44ca36393f77cd3",
        "signature_version": "v1",
        "signing_cert_url": cert_url,
        "timestamp": ago(seconds=5),
    }
    if kind == "Notification":
        message |= {"subject": "pre-deploy", "message": event(), "unsubscribe_url": confirm_url}
    else:
        message |= {
            "message": f"You are invited to subscribe to topic: {topic}. To confirm this "
            "subscription, please visit the subscribe_url included in this message.",
            "subscribe_url": confirm_url,
        }
    message["signature"] = signing_key().sign(message)
    return message


class PlayedSmn:
    """Plays the SMN and console hosts: serves the certificate, takes the confirmation."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        if request.url.path.endswith(".pem"):
            return httpx.Response(200, content=signing_key().pem)
        return httpx.Response(200, json={"request_id": "a1b2c3"})


def receive_documented(
    monkeypatch: pytest.MonkeyPatch, message: dict[str, Any], region: str = "eu-de"
) -> tuple[Any, PlayedSmn]:
    """Verify, parse and (as the handler does) confirm ``message`` under ``region``'s hosts."""
    monkeypatch.delenv("SMN_ENDPOINT", raising=False)
    monkeypatch.setenv("OS_REGION_NAME", region)
    monkeypatch.setenv("SMN_TOPIC_URNS", message["topic_urn"])
    settings = load_settings()
    played = PlayedSmn()
    client = SmnClient(
        lambda url: events_smn.url_refusal(url, settings), transport=httpx.MockTransport(played)
    )
    headers = {"content-type": "application/json", "x-smn-message-type": message["type"]}
    delivery = events.receive(
        events.WEBHOOK,
        headers,
        json.dumps(message).encode(),
        settings,
        certificates=client.certificate,
    )
    (record,) = delivery.records
    if isinstance(record, Handshake):
        record = subscriptions.confirm(record, client.confirm)
    return record, played


def test_otc_confirmation_on_the_console_host_is_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    record, played = receive_documented(
        monkeypatch, documented("SubscriptionConfirmation", OTC_CERT, OTC_CONFIRM)
    )
    assert record == Note("subscription_confirmed", f"subscribed to {TOPIC}")
    assert played.seen == [OTC_CERT, OTC_CONFIRM]


def test_huawei_cloud_capture_is_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = documented("SubscriptionConfirmation", BRAZIL_CERT, BRAZIL_CONFIRM, BRAZIL_TOPIC)
    record, played = receive_documented(monkeypatch, message, region="sa-brazil-1")
    assert record == Note("subscription_confirmed", f"subscribed to {BRAZIL_TOPIC}")
    assert played.seen == [BRAZIL_CERT, BRAZIL_CONFIRM]


def test_documented_notification_is_a_trigger_sent_when_signed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = documented("Notification", OTC_CERT, OTC_CONFIRM)
    record, played = receive_documented(monkeypatch, message)
    assert isinstance(record, Trigger)
    assert json.loads(record.key) == ["smn", "id", "deploy-4711", INSTANCE]  # its own id wins
    assert record.sent_at == datetime.fromisoformat(message["timestamp"])
    assert played.seen == [OTC_CERT]  # nothing confirmed, nothing unsubscribed


def test_documented_unsubscribe_confirmation_is_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    message = documented("UnsubscribeConfirmation", OTC_CERT, OTC_CONFIRM)
    record, played = receive_documented(monkeypatch, message)
    assert record == Note("unsubscribed", f"the subscription to {TOPIC} was cancelled")
    assert played.seen == [OTC_CERT]


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("signing_cert_url", OTC_CERT.replace("https://", "http://")),
        ("subscribe_url", OTC_CONFIRM.replace("https://", "http://")),
        ("subscribe_url", OTC_CONFIRM.replace("console.otc", "console.otc.evil")),
        ("signing_cert_url", BRAZIL_CERT),  # another cloud's host, not the region's
        ("subscribe_url", OTC_CONFIRM.replace(".com/", ".com:8443/")),
        ("subscribe_url", OTC_CONFIRM.replace("https://", "https://user:pw@")),
    ],
)
def test_urls_off_the_region_hosts_or_not_https_are_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, url: str
) -> None:
    urls = {"signing_cert_url": OTC_CERT, "subscribe_url": OTC_CONFIRM, field: url}
    message = documented(
        "SubscriptionConfirmation", urls["signing_cert_url"], urls["subscribe_url"]
    )
    with pytest.raises(UnauthorizedError) as caught:
        receive_documented(monkeypatch, message)
    assert caught.value.message.startswith(f"{field} must")


def test_smn_allowed_hosts_extend_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMN_ALLOWED_HOSTS", "smn-proxy.example.com")
    confirm = OTC_CONFIRM.replace("console.otc.t-systems.com", "smn-proxy.example.com")
    record, played = receive_documented(
        monkeypatch, documented("SubscriptionConfirmation", OTC_CERT, confirm)
    )
    assert isinstance(record, Note) and record.status == "subscription_confirmed"
    assert played.seen == [OTC_CERT, confirm]


def test_allowed_host_still_passes_the_ssrf_guard(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, smn: SmnEndpoint
) -> None:
    """A listed host that resolves to a loopback address is refused at fetch time."""
    monkeypatch.setenv("SMN_ALLOWED_HOSTS", "localhost")
    message = smn.message(message=event(), signing_cert_url="https://localhost/smn/c.pem")
    response = post(make_client("webhook"), message)
    assert response.status_code == 401
    assert "loopback" in response.get_json()["message"]
    assert smn.requests == []
    assert emu.requests() == []


def test_verify_without_a_certificate_provider_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """events/ never fetches: no provider, no verification."""
    monkeypatch.setenv("SMN_TOPIC_URNS", TOPIC)
    message = documented("Notification", OTC_CERT, OTC_CONFIRM)
    headers = {"x-smn-message-type": "Notification"}
    with pytest.raises(UnauthorizedError, match="no SMN certificate provider"):
        events_smn.verify(headers, json.dumps(message).encode(), load_settings())


def test_confirmation_refused_by_smn_is_400(
    client: FlaskClient, emu: Emulator, smn: SmnEndpoint
) -> None:
    """An expired token: SMN answers 4xx; the handler reports it and changes nothing."""
    message = smn.message("SubscriptionConfirmation", subscribe_url=smn.url + "/smn/gone")
    response = post(client, message)
    assert response.status_code == 400
    assert "SMN did not take the confirmation: SMN answered 404" in response.get_json()["message"]
    assert smn.requests == [smn.cert_path, "/smn/gone"]
    assert emu.requests() == []
