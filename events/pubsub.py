"""Google Pub/Sub push: the envelope Pub/Sub POSTs for each message of a push subscription.

``message.data`` is the base64 of the generic event; ``message.messageId`` is the key (a
redelivery carries the same one). Pub/Sub authenticates the push itself (an OIDC token
that Cloud Run checks before the request reaches the function), so this source is served
on ``event`` only; ``verify`` refuses, so that it can never be put on ``webhook`` unverified.
Pub/Sub redelivers on any answer but 102/200/201/202/204, which ``event`` gives only when a
retry can help.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config import Settings
from errors import UnauthorizedError
from events import generic
from events.base import (
    Delivery,
    Headers,
    attempt,
    decode_base64,
    json_object,
    validate,
)
from events.senders import PUBSUB
from models import Trigger

__all__ = ["LABEL", "NAME", "PushEnvelope", "matches", "parse", "verify"]

NAME, LABEL, matches = PUBSUB.NAME, PUBSUB.LABEL, PUBSUB.matches


class PubsubMessage(BaseModel):
    """``message``: Pub/Sub sends each id and time twice, camelCase and snake_case."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    data: str = Field(min_length=1)
    attributes: dict[str, str] | None = None
    messageId: str | None = Field(default=None, min_length=1)
    message_id: str | None = Field(default=None, min_length=1)
    publishTime: str | None = None

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
    envelope = validate(PushEnvelope, json_object(body), "Pub/Sub push envelope")
    message = envelope.message

    def read() -> list[Trigger]:
        data = decode_base64(message.data, "message.data")
        return generic.wrapped_trigger(
            data, source=NAME, key=message.id, field="message.data", settings=settings
        )

    return Delivery(records=attempt(read))
