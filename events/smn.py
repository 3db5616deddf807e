"""Open Telekom Cloud SMN HTTP(S) subscriptions: a topic's messages POSTed to ``webhook``.

SMN sends three kinds of message, named in ``X-SMN-MESSAGE-TYPE`` and in the body's
``type``: ``SubscriptionConfirmation`` (we confirm by GET of ``subscribe_url``),
``Notification`` (its ``message`` is the generic event, keyed on its own ``id``, else on
its ``message_id``) and ``UnsubscribeConfirmation`` (logged).

Every message is signed by SMN. What is signed (SMN user guide, "Message Signature
Verification", and Huawei's Java sample for it): the lines ``key\\nvalue\\n`` for these keys
in this order, each value as sent:

- Notification: ``message``, ``message_id``, ``subject`` (left out when empty),
  ``timestamp``, ``topic_urn``, ``type``;
- SubscriptionConfirmation, UnsubscribeConfirmation: ``message``, ``message_id``,
  ``subscribe_url``, ``timestamp``, ``topic_urn``, ``type``.

``signature`` is the base64 of an RSA (PKCS #1 v1.5) signature of those bytes, made with the
key of the certificate at ``signing_cert_url``, with the hash that certificate's own
signature algorithm names (the sample calls ``Signature.getInstance(cert.getSigAlgName())``).

Trust: the certificate is fetched over HTTPS from the region's SMN endpoint only (the host
is pinned, see ``clients/smn.py``); only topics listed in ``SMN_TOPIC_URNS`` are accepted
(without the list, every SMN message is refused: a valid SMN signature only proves that
*some* topic sent it); a subscription is confirmed only when its ``subscribe_url`` is on the
SMN endpoint too; the signed ``timestamp`` must be less than an hour old, which bounds
replays (a replay within the hour carries the same ``message_id``, the idempotency key).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field

from clients.smn import SmnClient, SmnError
from config import Settings
from errors import InvalidEventError, UnauthorizedError
from events import generic
from events.base import Delivery, Headers, Note, attempt, json_object, single, validate

__all__ = ["LABEL", "MAX_AGE", "NAME", "SmnMessage", "matches", "parse", "string_to_sign", "verify"]

NAME = "smn"
LABEL = "Open Telekom Cloud SMN HTTP(S) subscriptions (X-SMN-MESSAGE-TYPE header)"
MAX_AGE = timedelta(hours=1)
"""How old a signed ``timestamp`` may be; SMN's own retries of a delivery fall well within it."""
MAX_SKEW = timedelta(minutes=5)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

_log = logging.getLogger("predeploy.smn")
_clients: dict[tuple[str, float], SmnClient] = {}
_clients_lock = threading.Lock()

MessageType = Literal["SubscriptionConfirmation", "Notification", "UnsubscribeConfirmation"]


class SmnMessage(BaseModel):
    """The JSON body of an SMN HTTP(S) message, with SMN's field names."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: MessageType
    signature: str | None = None
    signature_version: str = "v1"
    signing_cert_url: str = Field(min_length=1)
    topic_urn: str = Field(min_length=1)
    message_id: str = Field(min_length=1)
    message: str
    subject: str | None = None
    timestamp: str = Field(min_length=1)
    subscribe_url: str | None = None
    unsubscribe_url: str | None = None


def matches(headers: Headers, body: bytes) -> bool:
    return "x-smn-message-type" in headers


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    """Listed topic, pinned URLs, fresh timestamp, then the signature: in that order."""
    if not settings.smn_topic_urns:
        raise UnauthorizedError(
            "no SMN_TOPIC_URNS is configured: SMN messages are refused until their topics "
            "are listed"
        )
    message = _message(headers, body)
    if message.topic_urn not in settings.smn_topic_urns:
        raise UnauthorizedError(f"topic {message.topic_urn} is not in SMN_TOPIC_URNS")
    client = _client(settings)
    reason = client.refusal(message.signing_cert_url)
    if reason is not None:
        raise UnauthorizedError(f"signing_cert_url {reason}")
    if message.type == "SubscriptionConfirmation":
        reason = client.refusal(message.subscribe_url or "")
        if reason is not None:
            raise UnauthorizedError(f"subscribe_url {reason}")
    if not message.signature:
        raise UnauthorizedError("the message carries no signature")
    if message.signature_version.lower() != "v1":
        raise UnauthorizedError("signature_version must be v1")
    _check_time(message.timestamp)
    try:
        certificate = client.certificate(message.signing_cert_url)
    except SmnError as exc:
        raise UnauthorizedError(f"the signing certificate is not usable: {exc}") from None
    _check_signature(message, certificate)


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    message = _message(headers, body)
    if message.type == "Notification":
        return Delivery(
            records=attempt(
                lambda: generic.wrapped_trigger(
                    message.message,
                    source=NAME,
                    key=message.message_id,
                    field="message",
                    settings=settings,
                )
            )
        )
    if message.type == "SubscriptionConfirmation":
        try:
            _client(settings).confirm(message.subscribe_url or "")
        except SmnError as exc:
            raise InvalidEventError(f"SMN did not take the confirmation: {exc}") from None
        _log.info(
            "SMN subscription confirmed",
            extra={"fields": {"outcome": "subscription_confirmed", "topic_urn": message.topic_urn}},
        )
        return single(Note("subscription_confirmed", f"subscribed to {message.topic_urn}"))
    _log.warning(
        "SMN subscription cancelled",
        extra={"fields": {"outcome": "unsubscribed", "topic_urn": message.topic_urn}},
    )
    return single(Note("unsubscribed", f"the subscription to {message.topic_urn} was cancelled"))


def string_to_sign(message: SmnMessage) -> bytes:
    """The bytes SMN signs for ``message`` (see the module's docstring)."""
    if message.type == "Notification":
        pairs = [("message", message.message), ("message_id", message.message_id)]
        if message.subject:
            pairs.append(("subject", message.subject))
    else:
        pairs = [
            ("message", message.message),
            ("message_id", message.message_id),
            ("subscribe_url", message.subscribe_url or ""),
        ]
    pairs += [
        ("timestamp", message.timestamp),
        ("topic_urn", message.topic_urn),
        ("type", message.type),
    ]
    return "".join(f"{key}\n{value}\n" for key, value in pairs).encode("utf-8")


def _message(headers: Headers, body: bytes) -> SmnMessage:
    """SMN's Content-Type is not documented, so it is not checked: the body must be JSON."""
    message = validate(SmnMessage, json_object(body), "SMN message")
    announced = headers.get("x-smn-message-type", "")
    if announced.lower() != message.type.lower():
        raise InvalidEventError("X-SMN-MESSAGE-TYPE does not match the message's type")
    return message


def _check_time(timestamp: str) -> None:
    try:
        sent = datetime.fromisoformat(timestamp)
    except ValueError:
        raise UnauthorizedError("the timestamp is not an ISO 8601 time") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    now = datetime.now(tz=UTC)
    if sent < now - MAX_AGE:
        raise UnauthorizedError("the message's timestamp is more than an hour old")
    if sent > now + MAX_SKEW:
        raise UnauthorizedError("the message's timestamp is more than 5 minutes in the future")


def _check_signature(message: SmnMessage, certificate: x509.Certificate) -> None:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise UnauthorizedError("the signing certificate does not hold an RSA key")
    named = certificate.signature_hash_algorithm
    algorithm = _HASHES.get(named.name) if named is not None else None
    if algorithm is None:
        raise UnauthorizedError("the signing certificate names no SHA-2 hash")
    try:
        signature = base64.b64decode(message.signature or "", validate=True)
    except (binascii.Error, ValueError):
        raise UnauthorizedError("the signature is not base64") from None
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise UnauthorizedError("the SMN signature does not match the message") from None


def _client(settings: Settings) -> SmnClient:
    """One client (connection pool and certificate cache) per endpoint, for the process."""
    key = (settings.smn_base_url, settings.api_timeout_seconds)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = SmnClient(key[0], timeout=key[1])
            _clients[key] = client
        return client
