"""What every event source provides, and the helpers they share.

A source is a module with ``NAME``, ``LABEL``, ``matches``, ``verify`` and ``parse`` (see
``EventSource``): it knows its sender's wire format and how that sender proves who it is,
and nothing about what we do with the event. ``parse`` turns one request into a
``Delivery``: its records in order, each a ``Trigger`` to act on, a ``Note`` (nothing to do,
and why) or the ``PredeployError`` that refused that one record. An event for several
instances is one record per instance (``fan_out``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from config import Settings
from errors import (
    ConfigurationError,
    FieldError,
    InvalidEventError,
    PayloadTooLargeError,
    PredeployError,
    UnsupportedMediaError,
)
from models import InstanceId, Note, Trigger

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "Delivery",
    "Envelope",
    "EventSource",
    "Headers",
    "Record",
    "Unreadable",
    "attempt",
    "check_batch",
    "check_count",
    "check_readable",
    "decode_base64",
    "fan_out",
    "field_errors",
    "json_depth",
    "json_document",
    "json_object",
    "json_value",
    "mapped_instance",
    "media_type",
    "read_body",
    "require_json",
    "single",
    "target_instances",
    "trigger_key",
    "unmapped",
    "validate",
]

DEFAULT_MAX_JSON_DEPTH = 32
"""``MAX_JSON_DEPTH``'s default; sources pass ``settings.max_json_depth`` to ``json_object``."""

Headers = Mapping[str, str]
"""Request headers with lower-cased names."""

M = TypeVar("M", bound=BaseModel)
_INSTANCE_ID: TypeAdapter[str] = TypeAdapter(InstanceId)


Record = Trigger | Note | PredeployError
"""One record of a delivery: act on it, note it, or report why it was refused."""


@dataclass(frozen=True)
class Delivery:
    """What one request carries. ``batch``: answer with every record's outcome, even for one."""

    records: tuple[Record, ...]
    batch: bool = False


def single(record: Record) -> Delivery:
    return Delivery(records=(record,))


def attempt(read: Callable[[], Trigger | Note | Sequence[Trigger]]) -> tuple[Record, ...]:
    """The records ``read`` makes (several for an event naming several instances), or the
    error that refused them.

    Sources read the envelope first (a broken one refuses the whole request), then each
    record through here: a record's failure is then reported as that record's outcome,
    which is what lets a queue delivery acknowledge what no retry can fix.
    """
    try:
        made = read()
    except PredeployError as exc:
        return (exc,)
    return (made,) if isinstance(made, Trigger | Note) else tuple(made)


class EventSource(Protocol):
    """One sender's envelope: recognise it, verify it over the raw bytes, parse it.

    ``LABEL`` names the sender and how it is recognised, for the message that lists the
    accepted sources. ``matches`` may look at the body, but must not raise.
    """

    NAME: str
    LABEL: str

    def matches(self, headers: Headers, body: bytes) -> bool: ...

    def verify(self, headers: Headers, body: bytes, settings: Settings) -> None: ...

    def parse(self, headers: Headers, body: bytes, settings: Settings) -> Delivery: ...


class Envelope(Protocol):
    """A wrapper around a whole HTTP request (FunctionGraph's APIG event).

    ``open`` gives the inner request's headers and raw body, which are then served like a
    request to ``webhook`` (detected, verified, parsed); ``seal`` puts the answer back into
    the wrapper's response format.
    """

    NAME: str
    LABEL: str

    def matches(self, headers: Headers, body: bytes) -> bool: ...

    def open(self, headers: Headers, body: bytes) -> tuple[dict[str, str], bytes]: ...

    def seal(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]: ...


def mapped_instance(environment: str, settings: Settings) -> str | None:
    """``INSTANCE_MAP[environment]``, checked against the instance ID rules; ``None`` if absent."""
    instance_id = settings.instance_map.get(environment)
    if instance_id is None:
        return None
    try:
        return _INSTANCE_ID.validate_python(instance_id)
    except ValidationError:
        raise ConfigurationError(
            f"INSTANCE_MAP maps environment '{environment}' to a malformed instance ID"
        ) from None


def unmapped(environment: str, settings: Settings) -> Note:
    """The note for a deployment to an environment that names no instance."""
    known = ", ".join(sorted(settings.instance_map)) or "none"
    return Note(
        "ignored",
        f"environment '{environment}' maps to no instance in INSTANCE_MAP (mapped: {known})",
    )


def media_type(headers: Headers) -> str:
    """The Content-Type without parameters, lower-cased; empty when absent."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_json(headers: Headers) -> None:
    """Refuse bodies that do not say they are JSON (``application/json`` or ``*/*+json``)."""
    found = media_type(headers)
    if found != "application/json" and not found.endswith("+json"):
        shown = found or "none"
        raise UnsupportedMediaError(f"Content-Type must be application/json (got {shown})")


class Unreadable:
    """A value the JSON text holds but no model may accept; ``rule`` says why.

    The parser keeps it in place of the value (a number with more digits than Python converts,
    ``NaN``/``Infinity``, a float that overflows, text with a lone surrogate), so that the
    records of a batch next to it are still read; each record is then checked on its own
    (``check_readable``), a whole document at once by ``json_document``.
    """

    __slots__ = ("rule",)

    def __init__(self, rule: str) -> None:
        self.rule = rule

    def __repr__(self) -> str:
        return f"Unreadable({self.rule!r})"


_MAX_DIGITS = sys.get_int_max_str_digits() or 4300
_TOO_MANY_DIGITS = f"is a number with more than {_MAX_DIGITS} digits"
_NOT_UNICODE = "is not valid Unicode text (it holds a lone surrogate)"


def _parse_int(text: str) -> int | Unreadable:
    if len(text) - text.startswith("-") > _MAX_DIGITS:
        return Unreadable(_TOO_MANY_DIGITS)
    return int(text)


def _parse_float(text: str) -> float | Unreadable:
    value = float(text)
    return value if math.isfinite(value) else Unreadable("is a number too large to represent")


def _parse_constant(name: str) -> Unreadable:
    return Unreadable(f"is {name}, which is not a JSON number")


def _loads(body: bytes | str) -> Any:
    """``json.loads`` that never fails on a number: such values become ``Unreadable``."""
    return json.loads(
        body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
    )


def json_value(body: bytes | str) -> Any:
    """Decode JSON text, or ``None`` when it is not JSON (for ``matches``, which never raises)."""
    try:
        return _loads(body)
    except (ValueError, RecursionError):
        return None


def json_object(
    body: bytes | str,
    what: str = "body",
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    *,
    lenient: bool = False,
) -> dict[str, Any]:
    """Decode text that must be one JSON object; ``what`` names it in the error."""
    value = json_document(body, what, max_depth, lenient=lenient)
    if not isinstance(value, dict):
        raise _not_json(what, f"must be a JSON object (got {_json_type(value)})")
    return value


def json_document(
    body: bytes | str,
    what: str = "body",
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    *,
    lenient: bool = False,
) -> Any:
    """Decode text that must be JSON nested at most ``max_depth`` levels deep.

    Every value must be one a model can take: a number Python cannot convert, ``NaN``,
    ``Infinity`` or text with a lone surrogate refuses the document, naming where it is.
    ``lenient`` (for batches, whose records stand alone) leaves such values in place as
    ``Unreadable`` instead; the records are checked one by one with ``check_readable``.
    """
    too_deep = f"is nested more than MAX_JSON_DEPTH ({max_depth}) levels deep"
    try:
        value = _loads(body)
    except UnicodeDecodeError:
        raise _not_json(what, "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _not_json(
            what, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise _not_json(what, too_deep) from None
    except ValueError:  # anything else the decoder refuses
        raise _not_json(what, "is not valid JSON") from None
    value, depth, problem = _screen(value)
    if depth > max_depth:
        raise _not_json(what, too_deep)
    if problem is not None and not lenient:
        raise _unreadable(what, *problem)
    return value


def check_readable(value: Any, what: str) -> None:
    """Refuse ``value`` (one record of a leniently read batch) if it holds an ``Unreadable``."""
    _, _, problem = _screen(value)
    if problem is not None:
        raise _unreadable(what, *problem)


def _unreadable(what: str, path: tuple[str, ...], rule: str) -> InvalidEventError:
    parts = path if what == "body" and path else (what, *path)  # the body's fields go bare
    field = ".".join(parts)
    return InvalidEventError(f"{field} {rule}", [FieldError(field=field, rule=rule)])


def _screen(value: Any) -> tuple[Any, int, tuple[tuple[str, ...], str] | None]:
    """``value`` with text that is not Unicode made ``Unreadable``, its depth, and the first
    ``Unreadable`` (its path and rule).

    Iterative, so that a hostile document cannot exhaust the stack.
    """
    root = [value]
    deepest = 0
    problem: tuple[tuple[str, ...], str] | None = None
    stack: list[tuple[Any, Any, int, tuple[str, ...]]] = [(root, 0, 1, ())]
    while stack:
        holder, key, depth, path = stack.pop()
        item = holder[key]
        if isinstance(item, str):
            if not _is_unicode(item):
                item = holder[key] = Unreadable(_NOT_UNICODE)
            else:
                continue
        if isinstance(item, Unreadable):
            if problem is None:
                problem = (path, item.rule)
            continue
        if isinstance(item, dict):
            if not all(_is_unicode(name) for name in item):
                holder[key] = Unreadable("has a field name that " + _NOT_UNICODE[3:])
                problem = problem or (path, holder[key].rule)
                continue
            children: Any = item.keys()
        elif isinstance(item, list):
            children = range(len(item))
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((item, child, depth + 1, (*path, str(child))) for child in children)
    return root[0], deepest, problem


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0, ``{}`` is 1)."""
    return _screen(value)[1]


def check_count(field: str, count: int, limit: int, setting: str) -> None:
    """Refuse a batch larger than its limit, naming the field, the limit and its setting.

    Sources call it as soon as they know a list's length (before parsing its items), e.g.
    ``check_count("records", len(records), settings.max_records_per_event,
    "MAX_RECORDS_PER_EVENT")``.
    """
    if count > limit:
        raise InvalidEventError(
            f"the event has {count} {field}; at most {setting} ({limit}) are accepted",
            [FieldError(field=field, rule=f"must have at most {limit} items ({setting})")],
        )


def check_batch(records: Sequence[object], settings: Settings) -> None:
    """The limits every source's result obeys, whatever the source checked itself."""
    check_count("records", len(records), settings.max_records_per_event, "MAX_RECORDS_PER_EVENT")
    instances = len({r.instance_id for r in records if isinstance(r, Trigger)})
    check_count("instances", instances, settings.max_instances_per_event, "MAX_INSTANCES_PER_EVENT")


def _not_json(what: str, rule: str) -> InvalidEventError:
    if what == "body":
        return InvalidEventError(f"body {rule}")
    return InvalidEventError(f"{what} {rule}", [FieldError(field=what, rule=rule)])


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def decode_base64(text: str, what: str) -> bytes:
    """Standard base64 (padding optional), or an error naming the field."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError(
            f"{what} is not valid base64", [FieldError(field=what, rule="must be base64")]
        ) from None


def validate(model: type[M], value: Any, what: str, prefix: str = "") -> M:
    """``model.model_validate(value)``, its failures as one error naming every field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidEventError(f"the {what} is invalid", field_errors(exc, prefix)) from None


_RULES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "literal_error": "must be {expected}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters long",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "too_short": "must not be empty",
}


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Turn pydantic's report into ``FieldError``s: a dotted field path and its rule."""
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"])
        template = _RULES.get(error["type"])
        rule = template.format(**error.get("ctx", {})) if template else error["msg"]
        found.append(FieldError(field=prefix + path, rule=rule))
    return found


def target_instances(
    instance_id: str | None,
    instance_ids: Sequence[str] | None,
    settings: Settings,
    *,
    prefix: str = "",
    one: str = "instance_id",
    many: str = "instance_ids",
) -> list[str]:
    """The instances an event targets: exactly one of a single id (``one``) or a list (``many``).

    The ids themselves are already valid (``InstanceId``); refused here: neither or both given,
    an empty list, an instance listed twice, more than ``MAX_INSTANCES_PER_EVENT``. ``prefix``
    goes before the field names (``data.`` for an event carried inside another).
    """
    errors: list[FieldError] = []
    if instance_id is None and instance_ids is None:
        errors.append(FieldError(prefix + one, f"is required (or {many}, a list of them)"))
    elif instance_id is not None and instance_ids is not None:
        errors.append(FieldError(prefix + many, f"must not be given together with {one}"))
    elif instance_ids is not None:
        limit = settings.max_instances_per_event
        if not instance_ids:
            errors.append(FieldError(prefix + many, "must list at least one instance"))
        elif len(instance_ids) > limit:
            rule = f"must list at most {limit} instances (MAX_INSTANCES_PER_EVENT)"
            errors.append(FieldError(prefix + many, rule))
        first: dict[str, int] = {}
        for index, value in enumerate(instance_ids):
            if value in first:
                rule = f"repeats {many}.{first[value]}: each instance at most once"
                errors.append(FieldError(f"{prefix}{many}.{index}", rule))
            first.setdefault(value, index)
    if errors:
        raise InvalidEventError("the pre-deploy event is invalid", errors)
    return [instance_id] if instance_id is not None else list(instance_ids or ())


def trigger_key(source: str, *parts: str | int) -> str:
    """An idempotency key: the source and what identifies the trigger, as a compact JSON array.

    Unambiguous whatever the parts hold (``@``, ``:``, quotes): two different lists of parts
    never give the same key, which plain concatenation cannot promise
    (``rel-2`` + ``@A`` versus ``rel-2@A``).
    """
    return json.dumps([source, *(str(part) for part in parts)], separators=(",", ":"))


def fan_out(
    instance_ids: Sequence[str],
    *,
    key: Sequence[str | int],
    previous_key: str | None = None,
    **fields: Any,
) -> list[Trigger]:
    """One ``Trigger`` per instance, in the event's order.

    ``key`` is the source followed by what identifies the event; every trigger's key ends
    with its instance (``trigger_key``), so each instance gets its own backup name hash,
    description marker and callback ``webhook-id``s. ``previous_key`` is what the previous
    release used as the event's key (it added ``@<instance>`` only for several instances);
    the look-up still recognises backups made under it.
    """
    source, *parts = key
    several = len(instance_ids) > 1
    return [
        Trigger(
            instance_id=instance,
            key=trigger_key(str(source), *parts, instance),
            previous_key=(
                None
                if previous_key is None
                else f"{previous_key}@{instance}"
                if several
                else previous_key
            ),
            **fields,
        )
        for instance in instance_ids
    ]


def read_body(stream: IO[bytes], declared: int | None, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (``MAX_BODY_BYTES``), before anything parses it.

    ``declared`` is the request's ``Content-Length`` (``None`` when chunked): a body declared
    too large is refused before a byte is read; one that only turns out too large stops at
    ``limit + 1`` bytes.
    """
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    try:
        body = stream.read(limit + 1)
    except Exception:  # the server's own errors: malformed chunks, an aborted upload
        raise InvalidEventError(
            "the body could not be read (malformed chunked encoding or an interrupted upload)"
        ) from None
    if len(body) > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    return body
