"""What every event source provides, and the helpers they share.

A source is a module with ``NAME``, ``matches``, ``verify`` and ``parse`` (see
``EventSource``): it knows its sender's wire format and how that sender proves who it is,
and nothing about what we do with the event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from config import Settings
from errors import FieldError, InvalidEventError, UnsupportedMediaError
from models import Trigger

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "EventSource",
    "Headers",
    "check_batch",
    "check_count",
    "field_errors",
    "json_depth",
    "json_object",
    "require_json",
]

DEFAULT_MAX_JSON_DEPTH = 32
"""``MAX_JSON_DEPTH``'s default; sources pass ``settings.max_json_depth`` to ``json_object``."""

Headers = Mapping[str, str]
"""Request headers with lower-cased names."""


class EventSource(Protocol):
    """One sender's envelope: recognise it, verify it over the raw bytes, parse it."""

    NAME: str

    def matches(self, headers: Headers) -> bool: ...

    def verify(self, headers: Headers, body: bytes, settings: Settings) -> None: ...

    def parse(self, headers: Headers, body: bytes, settings: Settings) -> list[Trigger]: ...


def require_json(headers: Headers) -> None:
    """Refuse bodies that do not say they are JSON (``application/json`` or ``*/*+json``)."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = media_type or "none"
        raise UnsupportedMediaError(f"Content-Type must be application/json (got {shown})")


def json_object(body: bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> dict[str, Any]:
    """Decode a body that must be one JSON object nested at most ``max_depth`` levels deep."""
    too_deep = f"body is nested more than MAX_JSON_DEPTH ({max_depth}) levels deep"
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise InvalidEventError("body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidEventError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidEventError(too_deep) from None
    if not isinstance(value, dict):
        raise InvalidEventError(f"body must be a JSON object (got {type(value).__name__})")
    if json_depth(value) > max_depth:
        raise InvalidEventError(too_deep)
    return value


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0, ``{}`` is 1).

    Iterative, so that a hostile document cannot exhaust the stack.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_count(field: str, count: int, limit: int, setting: str) -> None:
    """Refuse a batch larger than its limit, naming the field, the limit and its setting.

    Sources call it as soon as they know a list's length (before parsing its items), e.g.
    ``check_count("Records", len(records), settings.max_records_per_event,
    "MAX_RECORDS_PER_EVENT")``.
    """
    if count > limit:
        raise InvalidEventError(
            f"the event has {count} {field}; at most {setting} ({limit}) are accepted",
            [FieldError(field=field, rule=f"must have at most {limit} items ({setting})")],
        )


def check_batch(triggers: Sequence[Trigger], settings: Settings) -> None:
    """The limits every source's result obeys, whatever the source checked itself."""
    check_count("records", len(triggers), settings.max_records_per_event, "MAX_RECORDS_PER_EVENT")
    instances = len({trigger.instance_id for trigger in triggers})
    check_count("instances", instances, settings.max_instances_per_event, "MAX_INSTANCES_PER_EVENT")


_RULES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "string_type": "must be a string",
    "literal_error": "must be {expected}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters long",
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
