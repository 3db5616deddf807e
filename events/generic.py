"""The generic pre-deploy event: our own JSON format, signed per Standard Webhooks.

Senders that cannot sign may send ``Authorization: Bearer <WEBHOOK_TOKEN>`` instead. With
neither secret configured, every event is refused: never accepted unsigned.

The same event is the payload that queue sources carry (CloudEvents data, a Pub/Sub or SMN
message, a Kafka record, a timer's user event): ``wrapped_trigger`` reads it from there.
An event naming several instances (``instance_ids``) gives one trigger per instance.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config import Settings
from errors import FieldError, InvalidEventError, UnauthorizedError
from events.base import (
    Delivery,
    Headers,
    fan_out,
    field_errors,
    json_object,
    require_json,
    target_instances,
)
from events.senders import GENERIC, SIGNATURE_HEADERS, SVIX_HEADERS
from models import BackupDescription, BackupName, InstanceId, Trigger

__all__ = [
    "LABEL",
    "NAME",
    "GenericEventModel",
    "matches",
    "parse",
    "signed_with_standard_webhooks",
    "standard_headers",
    "verify",
    "verify_standard_webhooks",
    "wrapped_trigger",
]

NAME, LABEL, matches = GENERIC.NAME, GENERIC.LABEL, GENERIC.matches
_SIGNATURE_HEADERS, _SVIX_HEADERS = SIGNATURE_HEADERS, SVIX_HEADERS


class GenericEventModel(BaseModel):
    """The wire format of DESIGN.md; unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Literal["pre-deploy"]
    id: str | None = Field(default=None, min_length=1, max_length=200)
    instance_id: InstanceId | None = None
    instance_ids: list[InstanceId] | None = None
    name: BackupName | None = None
    description: BackupDescription | None = None
    callback_url: str | None = Field(default=None, min_length=1, max_length=2048)
    wait: bool | None = None
    dry_run: bool = False


def standard_headers(headers: Headers) -> Headers:
    """The ``svix-*`` headers under their Standard Webhooks names, read as the ``svix``
    library reads them: a ``svix-*`` header wins over its ``webhook-*`` twin."""
    if not any(name in headers for name in _SVIX_HEADERS):
        return headers
    merged = dict(headers)
    for svix, standard in _SVIX_HEADERS.items():
        if svix in headers:
            merged[standard] = headers[svix]
    return merged


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    """Standard Webhooks signature over the raw bytes, or the bearer token; else refuse.

    Several configured secrets or tokens (rotation) are all accepted; Svix's header names
    (``svix-id``, ``svix-timestamp``, ``svix-signature``) as well as the standard ones.
    """
    headers = standard_headers(headers)
    secrets = settings.secrets("webhook_secret")
    tokens = settings.secrets("webhook_token")
    if not secrets and not tokens:
        raise UnauthorizedError(
            "no WEBHOOK_SECRET or WEBHOOK_TOKEN is configured: unsigned events are refused"
        )
    if signed_with_standard_webhooks(headers, settings):
        verify_standard_webhooks(headers, body, secrets)
        return
    bearer = _bearer(headers)
    if bearer is not None and tokens:
        # Compared with every token, without stopping early, in constant time each.
        matches = [hmac.compare_digest(bearer.encode(), token.encode()) for token in tokens]
        if not any(matches):
            raise UnauthorizedError("the bearer token is not valid")
        return
    accepted = []
    if secrets:
        accepted.append("webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)")
    if tokens:
        accepted.append("Authorization: Bearer <token>")
    raise UnauthorizedError("the event is not authenticated: send " + " or ".join(accepted))


def _bearer(headers: Headers) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def verify_standard_webhooks(headers: Headers, body: bytes, secrets: Sequence[str]) -> None:
    """``webhook-id``/``-timestamp``/``-signature`` over the raw bytes; 5 minutes of tolerance.

    Any of ``secrets`` may have signed (rotation).
    """
    missing = [name for name in SIGNATURE_HEADERS if not headers.get(name)]
    if missing:
        raise UnauthorizedError("missing signature header(s): " + ", ".join(missing))
    try:
        # The library signs "{id}.{timestamp}.{text}" with text = the body decoded as UTF-8,
        # which is the raw bytes again for any body that can be valid JSON.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnauthorizedError("the webhook signature does not match the body") from None
    problems = []
    for secret in secrets:
        try:
            Webhook(secret).verify(text, dict(headers), json_parse=False)
            return
        except WebhookVerificationError as exc:
            problems.append(_signature_problem(str(exc)))
        except Exception:  # malformed header values make the library raise plain errors
            problems.append("the webhook-signature header is malformed")
    # The timestamp checks come first and do not depend on the secret: report the first.
    raise UnauthorizedError(problems[0])


def _signature_problem(library_message: str) -> str:
    if "too old" in library_message:
        return "the webhook-timestamp is more than 5 minutes old"
    if "too new" in library_message:
        return "the webhook-timestamp is more than 5 minutes in the future"
    if "Invalid Signature Headers" in library_message:
        return "the webhook-timestamp is not a Unix time in seconds"
    return "the webhook signature does not match the body"


def signed_with_standard_webhooks(headers: Headers, settings: Settings) -> bool:
    """Whether ``verify`` checks this request's Standard Webhooks signature (not a bearer token):
    only then are ``webhook-id`` and ``webhook-timestamp`` signed material."""
    return bool(settings.secrets("webhook_secret")) and any(
        name in standard_headers(headers) for name in _SIGNATURE_HEADERS
    )


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    """One trigger per instance, keyed on signed material only: the event's ``id``, else the
    signed ``webhook-id``, else the body's hash.

    ``sent_at`` stays ``None``: the generic event carries no time of its own, and the signed
    ``webhook-timestamp`` is the time of this attempt (a sender re-signs every retry, so that it
    passes the 5-minute check), not when the event was made; as the start of the look-up's
    window it would hide the backup an earlier attempt made.
    """
    require_json(headers)
    headers = standard_headers(headers)
    document = json_object(body, max_depth=settings.max_json_depth)
    event = _event(document, "")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    signed = signed_with_standard_webhooks(headers, settings)
    webhook_id = headers.get("webhook-id", "") if signed else ""
    identity: tuple[str, ...]
    if event.id:
        identity, trigger_id = ("id", event.id), event.id
    elif webhook_id:
        identity, trigger_id = ("webhook-id", webhook_id), webhook_id
    else:
        identity, trigger_id = ("sha256", digest.removeprefix("sha256:")), digest
    previous = f"{NAME}:{event.id or headers.get('webhook-id') or digest}"
    triggers = _triggers(event, NAME, (NAME, *identity), trigger_id, settings, "", previous, None)
    return Delivery(records=tuple(triggers))


def wrapped_trigger(
    payload: bytes | str | dict[str, Any],
    *,
    source: str,
    key: str,
    field: str,
    settings: Settings,
    fallback_id: str | None = None,
    identity: Sequence[str] | None = None,
    body_id_wins: bool = True,
    sent_at: datetime | None = None,
) -> list[Trigger]:
    """The generic event another sender carries at ``field`` (named in errors): its triggers,
    one per instance.

    ``key`` is the transport's id for the message (a redelivery carries the same one), and
    ``identity`` the same as parts, led by a word for what they are (default
    ``("message", key)``). The event's own ``id``, when it has one, wins over both: a producer
    that sends one event again under a new message id or offset gets its first backup back.
    Sources whose events are not made by a producer (a timer's fixed ``user_event``) pass
    ``body_id_wins=False``. The trigger id reported back is the event's own ``id`` when it has
    one, else ``fallback_id``, else ``key``.
    """
    document = (
        payload
        if isinstance(payload, dict)
        else json_object(payload, field, settings.max_json_depth)
    )
    event = _event(document, f"{field}.")
    trigger_id = event.id or fallback_id or key
    parts: tuple[str, ...] = tuple(identity) if identity is not None else ("message", key)
    if body_id_wins and event.id:
        parts = ("id", event.id)
    return _triggers(
        event,
        source,
        (source, *parts),
        trigger_id,
        settings,
        f"{field}.",
        f"{source}:{key}",
        sent_at,
    )


def _event(document: Any, prefix: str) -> GenericEventModel:
    """The event, or one error naming every invalid field at once: the unknown ones (with the
    known name they resemble) and the missing ones together."""
    try:
        return GenericEventModel.model_validate(document)
    except ValidationError as exc:
        errors = field_errors(exc, prefix)
    known = list(GenericEventModel.model_fields)
    for index, error in enumerate(errors):
        name = error.field.removeprefix(prefix)
        close = difflib.get_close_matches(name, known, n=1) if "." not in name else []
        if error.rule == "is not a known field" and close:
            rule = f"is not a known field (did you mean {close[0]}?)"
            errors[index] = FieldError(error.field, rule)
    named = {error.field for error in errors}
    targetless = isinstance(document, dict) and not {"instance_id", "instance_ids"} & set(document)
    if targetless and prefix + "instance_id" not in named:
        rule = "is required (or instance_ids, a list of them)"
        errors.append(FieldError(prefix + "instance_id", rule))
    raise InvalidEventError("the pre-deploy event is invalid", errors) from None


def _triggers(
    event: GenericEventModel,
    source: str,
    key: Sequence[str],
    trigger_id: str,
    settings: Settings,
    prefix: str,
    previous_key: str,
    sent_at: datetime | None,
) -> list[Trigger]:
    instances = target_instances(event.instance_id, event.instance_ids, settings, prefix=prefix)
    return fan_out(
        instances,
        key=key,
        previous_key=previous_key,
        source=source,
        trigger_id=trigger_id,
        name=event.name,
        description=event.description,
        callback_url=event.callback_url or settings.callback_url,
        wait=event.wait,
        dry_run=event.dry_run,
        sent_at=sent_at,
    )
