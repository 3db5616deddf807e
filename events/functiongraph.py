"""FunctionGraph trigger events, POSTed by FunctionGraph to ``/invoke`` of an event function.

These are not CloudEvents; each trigger has its own JSON (samples: the
otc-functiongraph-python-runtime repository, ``fg-events/*/resources``):

- SMN trigger: ``{"record": [{"event_source": "smn", "smn": {"message", "message_id",
  "topic_urn", …}}, …], "functionname", "requestId", "timestamp"}``: each record's
  ``message`` is a generic event, keyed on its own ``id``, else the ``message_id``.
- DMS for Kafka (and open-source Kafka) trigger: ``{"trigger_type": "KAFKA", "instance_id",
  "records": [{"topic_id", "messages": ["…", …]}]}``: each message is a generic event (a
  string, or an object whose ``message`` is one), keyed on its own ``id``. Kafka messages
  carry no id here, so without one the key is the topic and the hash of the message: the
  same message redelivered has the same.
- Timer trigger: ``{"trigger_type": "TIMER", "trigger_name", "time", "user_event"}``: the
  ``user_event`` (a string) is the generic event; the key is the trigger and its firing time.

FunctionGraph authenticates the invoker: these are served on ``event`` only, and ``verify``
refuses so that they can never be put on ``webhook`` unverified. Every record stands alone:
a bad one is reported and the others are still served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from config import Settings
from errors import InvalidEventError, UnauthorizedError
from events import generic
from events.base import Delivery, Headers, Record, attempt, check_readable, json_object, validate
from events.senders import FUNCTIONGRAPH, functiongraph_kind
from models import Trigger

__all__ = [
    "LABEL",
    "NAME",
    "KafkaTriggerEvent",
    "SmnTriggerRecord",
    "TimerTriggerEvent",
    "matches",
    "parse",
    "verify",
]

NAME, LABEL, matches = FUNCTIONGRAPH.NAME, FUNCTIONGRAPH.LABEL, FUNCTIONGRAPH.matches
T = TypeVar("T")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SmnTriggerMessage(_Wire):
    topic_urn: str = ""
    timestamp: str = ""
    message: str
    type: str = "notification"
    message_id: str = Field(min_length=1)
    subject: str | None = None


class SmnTriggerRecord(_Wire):
    event_version: str = ""
    event_source: Literal["smn"]
    event_subscription_urn: str = ""
    smn: SmnTriggerMessage


class SmnTriggerEvent(_Wire):
    record: list[Any] = Field(min_length=1)
    functionname: str = ""
    requestId: str = ""


class KafkaObjectMessage(_Wire):
    message: str


class KafkaRecord(_Wire):
    topic_id: str = ""
    messages: list[Any] = Field(default_factory=list)


class KafkaTriggerEvent(_Wire):
    event_version: str = ""
    event_time: int | None = None
    trigger_type: Literal["KAFKA"]
    region: str = ""
    instance_id: str = ""
    records: list[KafkaRecord] = Field(min_length=1)


class TimerTriggerEvent(_Wire):
    version: str = ""
    time: str = Field(min_length=1)
    trigger_type: Literal["TIMER"]
    trigger_name: str = Field(min_length=1)
    user_event: str = Field(min_length=1)


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    raise UnauthorizedError(
        "FunctionGraph trigger events are accepted on the event entry point only"
    )


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    document = json_object(body, lenient=True)  # an unreadable value refuses its record only
    kind = functiongraph_kind(document)
    if kind == "smn":
        return _smn(document, settings)
    if kind == "kafka":
        return _kafka(document, settings)
    if kind == "timer":
        return _timer(document, settings)
    raise InvalidEventError("not a FunctionGraph SMN, DMS for Kafka or timer trigger event")


def _smn(document: dict[str, Any], settings: Settings) -> Delivery:
    event = validate(SmnTriggerEvent, document, "FunctionGraph SMN trigger event")

    def record(index: int, raw: Any) -> list[Trigger]:
        check_readable(raw, f"record.{index}")
        item = validate(SmnTriggerRecord, raw, "SMN record", prefix=f"record.{index}.")
        return generic.wrapped_trigger(
            item.smn.message,
            source="smn",
            key=item.smn.message_id,
            field=f"record.{index}.smn.message",
            settings=settings,
            sent_at=_time(item.smn.timestamp),
        )

    return Delivery(records=tuple(_each(event.record, record)), batch=True)


def _kafka(document: dict[str, Any], settings: Settings) -> Delivery:
    event = validate(KafkaTriggerEvent, document, "FunctionGraph Kafka trigger event")
    located = [
        (f"records.{r}.messages.{m}", record.topic_id, message)
        for r, record in enumerate(event.records)
        for m, message in enumerate(record.messages)
    ]
    if not located:
        raise InvalidEventError("the Kafka trigger event carries no messages")

    def record(_: int, where: tuple[str, str, Any]) -> list[Trigger]:
        field, topic, raw = where
        check_readable(raw, field)
        text = raw if isinstance(raw, str) else _object_message(raw, field)
        digest = hashlib.sha256(text.encode()).hexdigest()
        return generic.wrapped_trigger(
            text,
            source="kafka",
            key=f"{event.instance_id}/{topic}/sha256:{digest}",
            fallback_id=f"sha256:{digest}",
            field=field,
            settings=settings,
            sent_at=_unix_time(event.event_time),
        )

    return Delivery(records=tuple(_each(located, record)), batch=True)


def _object_message(raw: Any, field: str) -> str:
    return validate(KafkaObjectMessage, raw, "Kafka message", prefix=f"{field}.").message


def _timer(document: dict[str, Any], settings: Settings) -> Delivery:
    event = validate(TimerTriggerEvent, document, "FunctionGraph timer trigger event")

    def read() -> list[Trigger]:
        # Each firing is its own trigger: the user event is the timer's fixed text, so its
        # ``id`` is the same every time and must not make all firings one.
        return generic.wrapped_trigger(
            event.user_event,
            source="timer",
            key=f"{event.trigger_name}@{event.time}",
            identity=("firing", event.trigger_name, event.time),
            body_id_wins=False,
            field="user_event",
            settings=settings,
            sent_at=_time(event.time),
        )

    return Delivery(records=attempt(read), batch=True)


def _time(value: str) -> datetime | None:
    """An ISO 8601 time as FunctionGraph writes it; one that cannot be read is no time."""
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _unix_time(value: int | None) -> datetime | None:
    try:
        return None if value is None else datetime.fromtimestamp(value, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _each(items: list[T], read: Callable[[int, T], list[Trigger]]) -> list[Record]:
    """Every item on its own: a refused one becomes its error, the rest go on."""
    return [
        record for index, item in enumerate(items) for record in attempt(partial(read, index, item))
    ]
