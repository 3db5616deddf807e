"""CloudEvents 1.0 over HTTP: binary, structured and batched; the data is the generic event.

This is what Knative Eventing delivers (a Broker's Trigger, a KafkaSource: type
``dev.knative.kafka.event``, id ``partition:<n>/offset:<n>``), and what Eventarc delivers on
Cloud Run. The ``cloudevents`` library reads the binary and structured modes; a batch
(``application/cloudevents-batch+json``, a JSON array of structured events) is read one
event at a time, so one bad event is reported on its own and the others still count. An
empty batch is valid (HTTP binding §3.3.2): acknowledged, with no records.

Binary mode's ``ce-*`` header values are unquoted and percent-decoded as the HTTP binding
says (§3.1.3.2); a value that is not UTF-8 then is refused, not repaired. So one event sent
in binary and in structured mode has the same attributes, the same key, one backup.

Accepted types are ``EVENT_TYPES`` (patterns, ``*`` matches anything); an event of another
type is acknowledged and ignored, so a Broker does not redeliver it. The key is the data's
own ``id`` when it has one (a producer that sends one event again, at a new offset or under
a new CloudEvents id, gets its first backup back), else the event's ``source`` and ``id``,
which CloudEvents defines as unique together. The ``time`` attribute is when it was sent.

On ``webhook`` a CloudEvent is authenticated like the generic event (Standard Webhooks
signature with ``WEBHOOK_SECRET``, or ``Authorization: Bearer <WEBHOOK_TOKEN>``), which
covers the body only: it is accepted in structured or batched mode, where every attribute is
inside the body; binary mode (attributes in ``ce-*`` headers that nothing signs) is refused.
On ``event`` the platform has authenticated the sender, and every mode is accepted.
"""

from __future__ import annotations

import binascii
import json
import re
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from cloudevents.exceptions import GenericException
from cloudevents.http import CloudEvent, from_http
from pydantic import BaseModel, ConfigDict, Field

from config import Settings
from errors import FieldError, InvalidEventError, UnsupportedMediaError
from events import generic
from events.base import (
    Delivery,
    Headers,
    Record,
    attempt,
    check_readable,
    json_document,
    json_object,
    media_type,
    validate,
)
from events.senders import CLOUDEVENTS
from models import Note, Trigger

__all__ = ["LABEL", "NAME", "Attributes", "matches", "parse", "verify"]

NAME, LABEL, matches = CLOUDEVENTS.NAME, CLOUDEVENTS.LABEL, CLOUDEVENTS.matches
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_BINARY_HEADERS = ("ce-specversion", "ce-id", "ce-source", "ce-type")
_QUOTED_PAIR = re.compile(r"\\(.)")


class Attributes(BaseModel):
    """The context attributes we act on; extensions (``partitionkey``, ``key``…) pass."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    datacontenttype: str | None = None
    subject: str | None = None
    time: str | None = None


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    """On ``webhook``: the generic event's Standard Webhooks signature or bearer token, over
    the body; so the attributes must be in the body too (structured or batched mode)."""
    generic.verify(headers, body, settings)
    if not media_type(headers).startswith("application/cloudevents"):
        raise UnsupportedMediaError(
            "binary-mode CloudEvents are not accepted on webhook: their ce-* headers are outside "
            f"the signature. Send structured mode (Content-Type: {STRUCTURED}), which puts "
            "every attribute in the signed body"
        )


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    found = media_type(headers)
    if found == BATCH:
        return _batch(body, settings)
    if found == STRUCTURED:
        json_object(body)  # our message for a body that is not one JSON object
        return _single(_read({"content-type": STRUCTURED}, body), settings)
    if found.startswith("application/cloudevents"):
        raise UnsupportedMediaError(
            f"CloudEvents must be JSON: {STRUCTURED} or {BATCH} (got {found})"
        )
    missing = [name for name in _BINARY_HEADERS if not headers.get(name)]
    if missing:
        raise InvalidEventError(
            "a binary-mode CloudEvent needs the headers ce-specversion, ce-id, ce-source and "
            "ce-type",
            [FieldError(field=name, rule="is required") for name in missing],
        )
    return _single(_read(_decoded(headers), body), settings)


def _decoded(headers: Headers) -> dict[str, str]:
    """The headers with every ``ce-*`` value decoded per the HTTP binding (§3.1.3.2)."""
    return {
        name: _header_value(name, value) if name.startswith("ce-") else value
        for name, value in headers.items()
    }


def _header_value(name: str, value: str) -> str:
    """Undo RFC 7230 quoting (older senders), then one round of percent-decoding; the bytes
    must be UTF-8 (an invalid or overlong sequence such as ``%C0%A0`` is refused)."""
    text = value.strip(" \t")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = _QUOTED_PAIR.sub(r"\1", text[1:-1])
    try:
        return unquote_to_bytes(text.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        raise InvalidEventError(
            f"the {name} header is not valid percent-encoded UTF-8",
            [
                FieldError(
                    field=name,
                    rule="must be UTF-8, percent-encoded (CloudEvents HTTP binding 3.1.3.2)",
                )
            ],
        ) from None


def _single(event: CloudEvent, settings: Settings) -> Delivery:
    """A broken envelope refuses the request; a bad event inside it is that record's outcome."""
    attributes = validate(Attributes, event.get_attributes(), "CloudEvent")
    return Delivery(records=attempt(lambda: _accept(event, attributes, settings)))


def _batch(body: bytes, settings: Settings) -> Delivery:
    items = json_document(body, lenient=True)  # an unreadable value refuses its event only
    if not isinstance(items, list):
        raise InvalidEventError(f"a {BATCH} body must be a JSON array of CloudEvents")
    if not items:
        return Delivery(records=(), batch=True)  # valid (HTTP binding 3.3.2): nothing to do
    records = tuple(
        record
        for index, item in enumerate(items)
        for record in _batch_record(index, item, settings)
    )
    return Delivery(records=records, batch=True)


def _batch_record(index: int, item: Any, settings: Settings) -> tuple[Record, ...]:
    def read() -> list[Trigger] | Note:
        if not isinstance(item, dict):
            raise InvalidEventError("each event of a batch must be a JSON object")
        check_readable(item, str(index))
        event = _read({"content-type": STRUCTURED}, json.dumps(item).encode())
        attributes = validate(Attributes, event.get_attributes(), "CloudEvent")
        return _accept(event, attributes, settings)

    return attempt(read)


def _read(headers: Headers, body: bytes) -> CloudEvent:
    """The library reads either mode; its messages may quote the body, so ours replace them."""
    try:
        return from_http(dict(headers), body, data_unmarshaller=_raw)
    except GenericException as exc:
        raise InvalidEventError(f"the CloudEvent is malformed: {_problem(exc)}") from None
    except (binascii.Error, ValueError, TypeError):
        raise InvalidEventError(
            "the CloudEvent is malformed: data_base64 is not valid base64",
            [FieldError(field="data_base64", rule="must be base64")],
        ) from None


def _raw(data: Any) -> Any:
    """Keep the data as sent: structured JSON data comes as text, base64 data as bytes."""
    return data


def _problem(exc: GenericException) -> str:
    name = type(exc).__name__
    if name == "MissingRequiredFields":
        return "one of the required attributes specversion, id, source, type is missing"
    if name == "InvalidRequiredFields":
        return "specversion must be 1.0"
    return "it cannot be read as a CloudEvent"


def _accept(event: CloudEvent, attributes: Attributes, settings: Settings) -> list[Trigger] | Note:
    if not any(fnmatchcase(attributes.type, pattern) for pattern in settings.event_types):
        return Note("ignored", f"CloudEvents of type {attributes.type!r} are not in EVENT_TYPES")
    content_type = (attributes.datacontenttype or "application/json").split(";", 1)[0].strip()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise InvalidEventError(
            "the CloudEvent's data must be JSON",
            [FieldError(field="datacontenttype", rule="must be application/json")],
        )
    data = event.get_data()
    if data is None or data in ("", b""):
        raise InvalidEventError(
            "the CloudEvent carries no data",
            [FieldError(field="data", rule="must be the pre-deploy event")],
        )
    return generic.wrapped_trigger(
        data,
        source=NAME,
        key=f"{attributes.source} {attributes.id}",
        identity=("ce", attributes.source, attributes.id),
        fallback_id=attributes.id,
        field="data",
        settings=settings,
        sent_at=_time(attributes.time),
    )


def _time(value: str | None) -> datetime | None:
    """The ``time`` attribute (RFC 3339); one that cannot be read is no time."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
