"""GitHub webhooks: ``deployment`` events start a backup, ``ping`` says the hook is set up.

GitHub signs the raw body: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`` with the
webhook's secret (``GITHUB_WEBHOOK_SECRET``). Without the secret configured, every delivery
is refused. The signature covers the body only: no header, no time. So the idempotency key
is the deployment's identity in the body, ``repository.id`` and ``deployment.id`` (the
repository's id survives a rename, its ``full_name`` does not): a captured delivery replayed
under a new ``X-GitHub-Delivery`` is the same deployment and gets its backup back, never a
second one. ``X-GitHub-Delivery`` is for the logs only. ``deployment.created_at`` (signed)
is when the event was made. The trigger id reported back is ``deployment-<deployment.id>``.

The instance is ``deployment.payload.instance_id`` (set by whoever creates the deployment),
else ``INSTANCE_MAP[deployment.environment]``; the callback URL is
``deployment.payload.callback_url``, else ``CALLBACK_URL``. A deployment to an environment
that maps to no instance is acknowledged and ignored: GitHub shows why in the delivery's
response, and the hook keeps working for the environments that do map.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config import Settings
from errors import UnauthorizedError
from events.base import (
    Delivery,
    Headers,
    json_object,
    json_value,
    mapped_instance,
    require_json,
    single,
    trigger_key,
    unmapped,
    validate,
)
from events.senders import GITHUB
from models import InstanceId, Note, Trigger

__all__ = ["LABEL", "NAME", "DeploymentEvent", "matches", "parse", "verify"]

NAME, LABEL, matches = GITHUB.NAME, GITHUB.LABEL, GITHUB.matches
_PREFIX = "sha256="
_EVENT_NAME = re.compile(r"[a-z_]{1,64}")


class DeploymentPayload(BaseModel):
    """``deployment.payload``: free-form JSON set by the deployment's creator; we read two keys."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instance_id: InstanceId | None = None
    callback_url: str | None = Field(default=None, min_length=1, max_length=2048)


class Deployment(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    environment: str = Field(min_length=1)
    ref: str = ""
    sha: str = ""
    task: str = ""
    created_at: datetime | None = None
    payload: DeploymentPayload = Field(default_factory=DeploymentPayload)

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_object(cls, value: Any) -> Any:
        """GitHub passes the payload through as given: an object, a JSON string, or empty."""
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            decoded = json_value(value)  # never raises: not JSON (or too deep) is no payload
            return decoded if isinstance(decoded, dict) else {}
        return value


class Repository(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    full_name: str = ""


class DeploymentEvent(BaseModel):
    """The ``deployment`` webhook event (the fields we use; GitHub sends many more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    action: str = "created"
    deployment: Deployment
    repository: Repository


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    """``X-Hub-Signature-256`` over the raw bytes, compared in constant time."""
    if settings.github_webhook_secret is None:
        raise UnauthorizedError(
            "no GITHUB_WEBHOOK_SECRET is configured: unsigned GitHub deliveries are refused"
        )
    signature = headers.get("x-hub-signature-256", "").strip()
    if not signature:
        raise UnauthorizedError(
            "missing X-Hub-Signature-256: set the webhook's secret to GITHUB_WEBHOOK_SECRET"
        )
    if not signature.startswith(_PREFIX):
        raise UnauthorizedError("the X-Hub-Signature-256 header is malformed")
    given = signature.lower().encode()
    # Every configured secret (rotation) is tried, each comparison in constant time.
    matched = [
        hmac.compare_digest(
            given, (_PREFIX + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()).encode()
        )
        for key in settings.secrets("github_webhook_secret")
    ]
    if not any(matched):
        raise UnauthorizedError("the X-Hub-Signature-256 signature does not match the body")


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    require_json(headers)
    event_name = headers.get("x-github-event", "")
    if event_name == "ping":
        return single(Note("pong", "the GitHub webhook is set up; deployment events start backups"))
    if event_name != "deployment":
        shown = f"'{event_name}' events" if _EVENT_NAME.fullmatch(event_name) else "this event"
        return single(
            Note("ignored", f"GitHub {shown} start no backup: subscribe to deployment events")
        )
    event = validate(
        DeploymentEvent,
        json_object(body, max_depth=settings.max_json_depth),
        "GitHub deployment event",
    )
    deployment = event.deployment
    instance_id = deployment.payload.instance_id or mapped_instance(
        deployment.environment, settings
    )
    if instance_id is None:
        return single(unmapped(deployment.environment, settings))
    delivery_id = headers.get("x-github-delivery", "").strip()
    trigger = Trigger(
        source=NAME,
        key=trigger_key(NAME, "deployment", event.repository.id, deployment.id, instance_id),
        # The previous release keyed on the unsigned delivery id; the name it gave holds the
        # (signed) deployment id, so only this deployment's earlier backup can match it.
        previous_key=f"{NAME}:{delivery_id}" if delivery_id else None,
        trigger_id=f"deployment-{deployment.id}",
        instance_id=instance_id,
        callback_url=deployment.payload.callback_url or settings.callback_url,
        sent_at=deployment.created_at,
    )
    return single(trigger)
