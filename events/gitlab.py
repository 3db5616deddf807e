"""GitLab webhooks: a deployment that starts running starts a backup.

GitLab proves the sender with the hook's secret token, sent as is in ``X-Gitlab-Token``
(compared in constant time with ``GITLAB_WEBHOOK_TOKEN``), or, where the hook has a signing
token, with a Standard Webhooks signature (``webhook-id`` = ``Idempotency-Key``,
``webhook-timestamp``, ``webhook-signature``) verified with ``GITLAB_WEBHOOK_SIGNING_TOKEN``.
With a signing token configured, a signature is required: a request with the plain token
alone is refused, so a leaked token cannot stand in for the signature.

A backup is made when a deploy actually starts: the Deployment Hook with status ``running``.
The key is the deployment's identity in the body, ``project.id`` and ``deployment_id``, not
``Idempotency-Key`` or ``X-Gitlab-Event-UUID`` (headers that no signature covers; they go
to the logs only): a redelivery, or a replay under new headers, gets the deployment's backup
back. A retried deploy job is a new deployment in GitLab (a new ``deployment_id``), and so
gets a backup of its own, taken right before it runs; so does every new deployment. The
token signs nothing, so whoever holds it can still send made-up deployments: the signing
token is the stronger choice. The deployment's ``status_changed_at`` is when it was sent.

Pipeline hooks start no backup: a pipeline is ``running`` long before (or without ever)
running its deploy job (a manual production job that nobody starts), and turns ``running``
again on every retried job. Events that start no backup (other statuses, other kinds,
environments that map to no instance) are acknowledged with ``200`` and the reason: GitLab
disables a hook after a few failed deliveries, which would cost the deployments that do map.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from config import Settings
from errors import UnauthorizedError
from events.base import (
    Delivery,
    Headers,
    json_object,
    mapped_instance,
    require_json,
    single,
    trigger_key,
    unmapped,
    validate,
)
from events.generic import verify_standard_webhooks
from events.senders import GITLAB
from models import Note, Trigger

__all__ = ["LABEL", "NAME", "DeploymentHook", "matches", "parse", "verify"]

NAME, LABEL, matches = GITLAB.NAME, GITLAB.LABEL, GITLAB.matches
_STARTING = "running"


def _gitlab_time(value: Any) -> Any:
    """GitLab writes ``2021-04-28 21:50:00 +0200`` (or ``… UTC``); unreadable is no time."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace(" UTC", " +0000")
    for layout in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, layout)
        except ValueError:
            continue
    return None


class Project(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    path_with_namespace: str = ""


class DeploymentHook(BaseModel):
    """``X-Gitlab-Event: Deployment Hook`` (the fields we use; GitLab sends more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    object_kind: Literal["deployment"]
    status: str
    deployment_id: int
    environment: str = Field(min_length=1)
    project: Project
    status_changed_at: Annotated[datetime | None, BeforeValidator(_gitlab_time)] = None


def verify(headers: Headers, body: bytes, settings: Settings) -> None:
    signing = settings.gitlab_webhook_signing_token
    token = settings.gitlab_webhook_token
    if signing is None and token is None:
        raise UnauthorizedError(
            "no GITLAB_WEBHOOK_TOKEN or GITLAB_WEBHOOK_SIGNING_TOKEN is configured: "
            "unauthenticated GitLab deliveries are refused"
        )
    if signing is not None:
        if "webhook-signature" not in headers:
            raise UnauthorizedError(
                "missing webhook-signature: with GITLAB_WEBHOOK_SIGNING_TOKEN set, "
                "GitLab deliveries must be signed"
            )
        verify_standard_webhooks(headers, body, settings.secrets("gitlab_webhook_signing_token"))
        return
    given = headers.get("x-gitlab-token", "")
    if not given:
        raise UnauthorizedError("missing X-Gitlab-Token: set the hook's secret token")
    matched = [
        hmac.compare_digest(given.encode(), value.encode())
        for value in settings.secrets("gitlab_webhook_token")
    ]
    if not any(matched):
        raise UnauthorizedError("the X-Gitlab-Token is not valid")


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    require_json(headers)
    document = json_object(body, max_depth=settings.max_json_depth)
    kind = document.get("object_kind")
    if kind == "deployment":
        deployment = validate(DeploymentHook, document, "GitLab deployment event")
        return _deployment(deployment, _previous_key(headers, body), settings)
    if kind == "pipeline":
        return single(
            Note(
                "ignored",
                "GitLab pipeline events start no backup (a pipeline runs before its deploy "
                "job does, or without it): enable Deployment events on the hook",
            )
        )
    return single(Note("ignored", "this GitLab event starts no backup: send deployment events"))


def _deployment(event: DeploymentHook, previous_key: str, settings: Settings) -> Delivery:
    if event.status != _STARTING:
        return single(
            Note(
                "ignored",
                f"deployments start a backup when they are {_STARTING}, not {event.status!r}",
            )
        )
    instance_id = mapped_instance(event.environment, settings)
    if instance_id is None:
        return single(unmapped(event.environment, settings))
    return single(
        Trigger(
            source=NAME,
            key=trigger_key(NAME, "deployment", event.project.id, event.deployment_id, instance_id),
            previous_key=previous_key,
            trigger_id=f"deployment-{event.deployment_id}",
            instance_id=instance_id,
            callback_url=settings.callback_url,
            sent_at=event.status_changed_at,
        )
    )


def _previous_key(headers: Headers, body: bytes) -> str:
    """The previous release's key (from headers no signature covers): for the look-up only,
    where it can match nothing but this deployment's earlier backup (its name holds the
    deployment id)."""
    for name in ("idempotency-key", "x-gitlab-event-uuid"):
        value = headers.get(name, "").strip()
        if value:
            return f"{NAME}:{value}"
    return f"{NAME}:sha256:" + hashlib.sha256(body).hexdigest()
