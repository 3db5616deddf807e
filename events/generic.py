"""The generic pre-deploy event: our own JSON format, signed per Standard Webhooks.

Senders that cannot sign may send ``Authorization: Bearer <WEBHOOK_TOKEN>`` instead. With
neither secret configured, every event is refused: never accepted unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config import Settings
from errors import InvalidEventError, UnauthorizedError
from events.base import (
    Headers,
    fan_out,
    field_errors,
    json_object,
    require_json,
    target_instances,
)
from models import BackupDescription, BackupName, InstanceId, Trigger

__all__ = ["NAME", "GenericEventModel", "matches", "parse", "verify"]

NAME = "generic"
_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


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


def matches(headers: Headers) -> bool:
    """The fallback source: any request no more specific source claims."""
    return True


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    """Standard Webhooks signature over the raw bytes, or the bearer token; else refuse."""
    secret = settings.webhook_secret
    token = settings.webhook_token
    if secret is None and token is None:
        raise UnauthorizedError(
            "no WEBHOOK_SECRET or WEBHOOK_TOKEN is configured: unsigned events are refused"
        )
    signed = any(name in headers for name in _SIGNATURE_HEADERS)
    if signed and secret is not None:
        _verify_signature(headers, body, secret.get_secret_value())
        return
    bearer = _bearer(headers)
    if bearer is not None and token is not None:
        if not hmac.compare_digest(bearer.encode(), token.get_secret_value().encode()):
            raise UnauthorizedError("the bearer token is not valid")
        return
    accepted = []
    if secret is not None:
        accepted.append("webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)")
    if token is not None:
        accepted.append("Authorization: Bearer <token>")
    raise UnauthorizedError("the event is not authenticated: send " + " or ".join(accepted))


def _bearer(headers: Headers) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _verify_signature(headers: Headers, body: bytes, secret: str) -> None:
    missing = [name for name in _SIGNATURE_HEADERS if not headers.get(name)]
    if missing:
        raise UnauthorizedError("missing signature header(s): " + ", ".join(missing))
    try:
        # The library signs "{id}.{timestamp}.{text}" with text = the body decoded as UTF-8,
        # which is the raw bytes again for any body that can be valid JSON.
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnauthorizedError("the webhook signature does not match the body") from None
    try:
        Webhook(secret).verify(text, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        raise UnauthorizedError(_signature_problem(str(exc))) from None
    except Exception:  # malformed header values make the library raise plain errors
        raise UnauthorizedError("the webhook-signature header is malformed") from None


def _signature_problem(library_message: str) -> str:
    if "too old" in library_message:
        return "the webhook-timestamp is more than 5 minutes old"
    if "too new" in library_message:
        return "the webhook-timestamp is more than 5 minutes in the future"
    if "Invalid Signature Headers" in library_message:
        return "the webhook-timestamp is not a Unix time in seconds"
    return "the webhook signature does not match the body"


def parse(headers: Headers, body: bytes, settings: Settings) -> list[Trigger]:
    """One trigger per instance; the key is the event's ``id``, else the delivery's id, else the
    body's hash (with the instance added when there are several)."""
    require_json(headers)
    document = json_object(body)
    try:
        event = GenericEventModel.model_validate(document)
    except ValidationError as exc:
        raise InvalidEventError("the pre-deploy event is invalid", field_errors(exc)) from None
    trigger_id = (
        event.id or headers.get("webhook-id") or "sha256:" + hashlib.sha256(body).hexdigest()
    )
    return fan_out(
        target_instances(event.instance_id, event.instance_ids, settings),
        key=f"{NAME}:{trigger_id}",
        source=NAME,
        trigger_id=trigger_id,
        name=event.name,
        description=event.description,
        callback_url=event.callback_url or settings.callback_url,
        wait=event.wait,
        dry_run=event.dry_run,
    )
