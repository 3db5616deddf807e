"""Open Telekom Cloud (and Huawei Cloud) SMN HTTP(S) subscriptions: a topic's messages POSTed
to ``webhook``.

SMN sends three kinds of message, named in ``X-SMN-MESSAGE-TYPE`` and in the body's
``type``: ``SubscriptionConfirmation`` (a ``Handshake``: the handler confirms it by GET of
``subscribe_url``), ``Notification`` (its ``message`` is the generic event, keyed on its own
``id``, else on its ``message_id``; its signed ``timestamp`` is the trigger's ``sent_at``) and
``UnsubscribeConfirmation`` (logged).

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

Trust: ``signing_cert_url`` and ``subscribe_url`` must be ``https`` URLs on the region's SMN
and console hosts (``Settings.smn_hosts``; ``SMN_ENDPOINT`` besides, for an emulator); only
topics listed in ``SMN_TOPIC_URNS`` are accepted (without the list, every SMN message is
refused: a valid SMN signature only proves that *some* topic sent it); the signed
``timestamp`` must be less than an hour old, which bounds replays (a replay within the hour
carries the same ``message_id``, the idempotency key).

Pure, as every source: the certificate comes from the ``certificates`` provider the caller
injects (``clients.smn.SmnClient.certificate``), and the confirmation is the handler's.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field

from config import Settings
from errors import InvalidEventError, UnauthorizedError
from events import generic
from events.base import Delivery, Headers, attempt, json_object, single, validate
from events.senders import SMN
from models import Handshake, Note

__all__ = [
    "LABEL",
    "MAX_AGE",
    "NAME",
    "CertificateProvider",
    "SmnMessage",
    "matches",
    "parse",
    "string_to_sign",
    "url_refusal",
    "verify",
]

NAME, LABEL, matches = SMN.NAME, SMN.LABEL, SMN.matches
MAX_AGE = timedelta(hours=1)
"""How old a signed ``timestamp`` may be; SMN's own retries of a delivery fall well within it."""
MAX_SKEW = timedelta(minutes=5)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

_log = logging.getLogger("predeploy.smn")

CertificateProvider = Callable[[str], bytes]
"""``url -> certificate`` (PEM or DER bytes), for a URL ``url_refusal`` accepted. Raises
``LookupError`` when SMN answers without a certificate, ``UpstreamUnavailableError`` when SMN
cannot be reached."""

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


def verify(
    headers: Headers,
    body: bytes,
    settings: Settings,
    certificates: CertificateProvider | None = None,
) -> None:
    """Listed topic, allowed URLs, fresh timestamp, then the signature: in that order.

    Without a certificate provider nothing can be verified, so the message is refused.
    """
    if not settings.smn_topic_urns:
        raise UnauthorizedError(
            "no SMN_TOPIC_URNS is configured: SMN messages are refused until their topics "
            "are listed"
        )
    message = _message(headers, body)
    if message.topic_urn not in settings.smn_topic_urns:
        raise UnauthorizedError(f"topic {message.topic_urn} is not in SMN_TOPIC_URNS")
    reason = url_refusal(message.signing_cert_url, settings)
    if reason is not None:
        raise UnauthorizedError(f"signing_cert_url {reason}")
    if message.type == "SubscriptionConfirmation":
        reason = url_refusal(message.subscribe_url or "", settings)
        if reason is not None:
            raise UnauthorizedError(f"subscribe_url {reason}")
    if not message.signature:
        raise UnauthorizedError("the message carries no signature")
    if message.signature_version.lower() != "v1":
        raise UnauthorizedError("signature_version must be v1")
    _check_time(message.timestamp)
    if certificates is None:
        raise UnauthorizedError("no SMN certificate provider is configured")
    try:
        certificate = _certificate(certificates(message.signing_cert_url))
    except LookupError as exc:
        raise UnauthorizedError(f"the signing certificate is not usable: {exc}") from None
    _check_signature(message, certificate)


def url_refusal(url: str, settings: Settings) -> str | None:
    """Why SMN's ``url`` may not be fetched, or ``None``: https on one of
    ``settings.smn_hosts`` (default port), or the very origin of ``SMN_ENDPOINT``."""
    try:
        parts = urlsplit(url)
        origin = _origin(parts.scheme, parts.hostname, parts.port)
    except ValueError:
        origin = None
    allowed = origin is not None and (
        origin in {("https", host, 443) for host in settings.smn_hosts}
        or origin == _endpoint_origin(settings)
    )
    if not allowed:
        hosts = ", ".join(settings.smn_hosts)
        region = settings.os_region_name
        return (
            f"must be an https URL on an SMN host of {region} ({hosts}), "
            "SMN_ALLOWED_HOSTS or SMN_ENDPOINT"
        )
    if parts.username is not None or parts.password is not None:
        return "must not contain user information"
    return None


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
                    sent_at=_time(message.timestamp),
                )
            )
        )
    if message.type == "SubscriptionConfirmation":
        return single(
            Handshake(
                "subscription_confirmed",
                f"subscribed to {message.topic_urn}",
                url=message.subscribe_url or "",
                topic=message.topic_urn,
            )
        )
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


def _time(timestamp: str) -> datetime:
    try:
        sent = datetime.fromisoformat(timestamp)
    except ValueError:
        raise UnauthorizedError("the timestamp is not an ISO 8601 time") from None
    return sent if sent.tzinfo is not None else sent.replace(tzinfo=UTC)


def _check_time(timestamp: str) -> None:
    sent = _time(timestamp)
    now = datetime.now(tz=UTC)
    if sent < now - MAX_AGE:
        raise UnauthorizedError("the message's timestamp is more than an hour old")
    if sent > now + MAX_SKEW:
        raise UnauthorizedError("the message's timestamp is more than 5 minutes in the future")


def _certificate(data: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise UnauthorizedError("the signing certificate cannot be read") from None


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


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    if scheme not in ("https", "http") or not host:
        raise ValueError("not an absolute http(s) URL")
    return scheme, host.lower().rstrip("."), port or (443 if scheme == "https" else 80)


def _endpoint_origin(settings: Settings) -> tuple[str, str, int] | None:
    if settings.smn_endpoint is None:
        return None
    parts = urlsplit(settings.smn_endpoint)
    return _origin(parts.scheme, parts.hostname, parts.port)
