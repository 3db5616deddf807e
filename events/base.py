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
    "EventSource",
    "Headers",
    "fan_out",
    "field_errors",
    "json_object",
    "require_json",
    "target_instances",
]

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


def json_object(body: bytes) -> dict[str, Any]:
    """Decode a body that must be one JSON object."""
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise InvalidEventError("body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidEventError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidEventError("body is nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidEventError(f"body must be a JSON object (got {type(value).__name__})")
    return value


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


def target_instances(
    instance_id: str | None,
    instance_ids: Sequence[str] | None,
    settings: Settings,
    *,
    one: str = "instance_id",
    many: str = "instance_ids",
) -> list[str]:
    """The instances an event targets: exactly one of a single id (``one``) or a list (``many``).

    The ids themselves are already valid (``InstanceId``); refused here: neither or both given,
    an empty list, an instance listed twice, more than ``MAX_INSTANCES_PER_EVENT``.
    """
    errors: list[FieldError] = []
    if instance_id is None and instance_ids is None:
        errors.append(FieldError(field=one, rule=f"is required (or {many}, a list of them)"))
    elif instance_id is not None and instance_ids is not None:
        errors.append(FieldError(field=many, rule=f"must not be given together with {one}"))
    elif instance_ids is not None:
        limit = settings.max_instances_per_event
        if not instance_ids:
            errors.append(FieldError(field=many, rule="must list at least one instance"))
        elif len(instance_ids) > limit:
            errors.append(
                FieldError(
                    field=many,
                    rule=f"must list at most {limit} instances (MAX_INSTANCES_PER_EVENT)",
                )
            )
        first: dict[str, int] = {}
        for index, value in enumerate(instance_ids):
            if value in first:
                rule = f"repeats {many}.{first[value]}: each instance at most once"
                errors.append(FieldError(field=f"{many}.{index}", rule=rule))
            first.setdefault(value, index)
    if errors:
        raise InvalidEventError("the pre-deploy event is invalid", errors)
    return [instance_id] if instance_id is not None else list(instance_ids or ())


def fan_out(instance_ids: Sequence[str], *, key: str, **fields: Any) -> list[Trigger]:
    """One ``Trigger`` per instance, in the event's order.

    With one instance the key is the event's own, so ``instance_ids: [x]`` is the same trigger
    as ``instance_id: x``. With several, each key gains its instance: every instance gets its
    own backup name hash, description marker and callback ``webhook-id``s.
    """
    several = len(instance_ids) > 1
    return [
        Trigger(instance_id=instance, key=f"{key}@{instance}" if several else key, **fields)
        for instance in instance_ids
    ]
