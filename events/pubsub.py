"""Google Pub/Sub push: what Pub/Sub POSTs for each message of a push subscription.

Two formats, both documented by Pub/Sub ("Push subscriptions", "Payload unwrapping"):

- the envelope ``{"message": {"data", "attributes", "messageId", "publishTime", …},
  "subscription"}``: ``message.data`` is the base64 of the generic event, ``messageId`` the
  key (a redelivery carries the same one), ``publishTime`` the trigger's ``sent_at``;
- unwrapped: the body *is* the message data (the generic event), attributes arrive as plain
  headers; only with "write metadata" on do ``x-goog-pubsub-message-id`` and
  ``x-goog-pubsub-publish-time`` headers carry the id and the time. Without them the key is
  the event's own ``id``, else the body's hash. Pub/Sub's ``User-Agent`` (``APIs-Google``) or
  those headers tell it apart.

Pub/Sub authenticates the push itself (an OIDC token that Cloud Run checks before the request
reaches the function), so this source is served on ``event`` only; ``verify`` refuses, so
that it can never be put on ``webhook`` unverified. Pub/Sub redelivers on any answer but
102/200/201/202/204 until the message's retention ends, so a message that can never be read
(no ``data``, a broken envelope) is one failed record in a ``2xx`` answer, never a ``4xx``;
``redelivers_every_failure`` lets the entry point do the same for what fails before a source
is known (an oversized or unreadable body).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config import Settings
from errors import FieldError, InvalidEventError, PredeployError, UnauthorizedError
from events import generic
from events.base import (
    Delivery,
    Headers,
    attempt,
    decode_base64,
    json_object,
    json_value,
    validate,
)
from events.senders import (
    PUBSUB,
    PUBSUB_MESSAGE_ID,
    PUBSUB_PUBLISH_TIME,
    pubsub_envelope,
    redelivers_every_failure,
)
from models import Trigger

__all__ = [
    "LABEL",
    "NAME",
    "PushEnvelope",
    "matches",
    "parse",
    "redelivers_every_failure",
    "verify",
]

NAME, LABEL, matches = PUBSUB.NAME, PUBSUB.LABEL, PUBSUB.matches
_MESSAGE_ID, _PUBLISH_TIME = PUBSUB_MESSAGE_ID, PUBSUB_PUBLISH_TIME
_NO_DATA = "is empty: the message carries attributes only, no pre-deploy event"


class PubsubMessage(BaseModel):
    """``message``: Pub/Sub sends each id and time twice, camelCase and snake_case."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    data: str | None = None
    attributes: dict[str, str] | None = None
    messageId: str | None = Field(default=None, min_length=1)
    message_id: str | None = Field(default=None, min_length=1)
    publishTime: str | None = None
    publish_time: str | None = None

    @model_validator(mode="after")
    def _has_id(self) -> PubsubMessage:
        if self.messageId is None and self.message_id is None:
            raise ValueError("messageId is required")
        return self

    @property
    def id(self) -> str:
        return self.messageId or self.message_id or ""


class PushEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    message: PubsubMessage
    subscription: str = Field(min_length=1)
    deliveryAttempt: int | None = None


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    raise UnauthorizedError("Pub/Sub push is accepted on the event entry point only")


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    """The message's triggers; a delivery that cannot be read is one failed record."""
    try:
        if _MESSAGE_ID not in headers and _is_envelope(json_value(body)):
            return _envelope(body, settings)
        return Delivery(records=attempt(lambda: _unwrapped(headers, body, settings)))
    except PredeployError as exc:
        return Delivery(records=(exc,))


def _envelope(body: bytes, settings: Settings) -> Delivery:
    envelope = validate(PushEnvelope, json_object(body), "Pub/Sub push envelope")
    message = envelope.message

    def read() -> list[Trigger]:
        if not message.data:
            raise InvalidEventError(
                f"message.data {_NO_DATA}", [FieldError("message.data", _NO_DATA)]
            )
        data = decode_base64(message.data, "message.data")
        return generic.wrapped_trigger(
            data,
            source=NAME,
            key=message.id,
            field="message.data",
            settings=settings,
            sent_at=_time(message.publishTime or message.publish_time),
        )

    return Delivery(records=attempt(read))


def _unwrapped(headers: Headers, body: bytes, settings: Settings) -> list[Trigger]:
    """The body is the event: keyed on its ``id``, else on the message id Pub/Sub wrote as
    metadata, else on the body's hash (then nothing but the body identifies the message)."""
    if not body.strip():
        raise InvalidEventError(f"body {_NO_DATA}", [FieldError("body", _NO_DATA)])
    document = json_object(body, "body", settings.max_json_depth)
    message_id = headers.get(_MESSAGE_ID, "")
    digest = hashlib.sha256(body).hexdigest()
    return generic.wrapped_trigger(
        document,
        source=NAME,
        key=message_id or "sha256:" + digest,
        identity=("message", message_id) if message_id else ("sha256", digest),
        field="body",
        settings=settings,
        sent_at=_time(headers.get(_PUBLISH_TIME)),
    )


_is_envelope = pubsub_envelope


def _time(text: str | None) -> datetime | None:
    """Pub/Sub's RFC 3339 publish time (up to nanoseconds), or ``None`` if absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
