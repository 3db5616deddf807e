"""GitLab webhooks: a deployment that starts running, or a pipeline that does, starts a backup.

GitLab proves the sender with the hook's secret token, sent as is in ``X-Gitlab-Token``
(compared in constant time with ``GITLAB_WEBHOOK_TOKEN``), or, where the hook has a signing
token, with a Standard Webhooks signature (``webhook-id`` = ``Idempotency-Key``,
``webhook-timestamp``, ``webhook-signature``) verified with ``GITLAB_WEBHOOK_SIGNING_TOKEN``.
With a signing token configured, a signature is required: a request with the plain token
alone is refused, so a leaked token cannot stand in for the signature.

``Idempotency-Key`` (GitLab 17.4+, the same on every retry of one event) is the key; older
GitLab versions send ``X-Gitlab-Event-UUID``, else the body's hash is used. The instance is
``INSTANCE_MAP[environment]``. Events that start no backup (other statuses, other kinds,
environments that map to no instance) are acknowledged with ``200`` and the reason: GitLab
disables a hook after a few failed deliveries, which would cost the deployments that do map.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from config import Settings
from errors import UnauthorizedError
from events.base import (
    Delivery,
    Headers,
    Note,
    Record,
    json_object,
    mapped_instance,
    require_json,
    single,
    unmapped,
    validate,
)
from events.generic import verify_standard_webhooks
from events.senders import GITLAB
from models import Trigger

__all__ = ["LABEL", "NAME", "DeploymentHook", "PipelineHook", "matches", "parse", "verify"]

NAME, LABEL, matches = GITLAB.NAME, GITLAB.LABEL, GITLAB.matches
_STARTING = "running"


class Project(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int | None = None
    path_with_namespace: str = ""


class DeploymentHook(BaseModel):
    """``X-Gitlab-Event: Deployment Hook`` (the fields we use; GitLab sends more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    object_kind: Literal["deployment"]
    status: str
    deployment_id: int
    environment: str = Field(min_length=1)
    project: Project | None = None


class PipelineAttributes(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    status: str
    ref: str = ""


class BuildEnvironment(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    action: str = "start"


class PipelineBuild(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    name: str = ""
    environment: BuildEnvironment | None = None


class PipelineHook(BaseModel):
    """``X-Gitlab-Event: Pipeline Hook``; its deploy jobs name the environments."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    object_kind: Literal["pipeline"]
    object_attributes: PipelineAttributes
    builds: list[PipelineBuild] = Field(default_factory=list)
    project: Project | None = None


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
        verify_standard_webhooks(headers, body, settings.gitlab_webhook_signing_tokens)
        return
    given = headers.get("x-gitlab-token", "")
    if not given:
        raise UnauthorizedError("missing X-Gitlab-Token: set the hook's secret token")
    matched = [
        hmac.compare_digest(given.encode(), value.encode())
        for value in settings.gitlab_webhook_tokens
    ]
    if not any(matched):
        raise UnauthorizedError("the X-Gitlab-Token is not valid")


def parse(headers: Headers, body: bytes, settings: Settings) -> Delivery:
    require_json(headers)
    document = json_object(body, max_depth=settings.max_json_depth)
    key = _idempotency_key(headers, body)
    kind = document.get("object_kind")
    if kind == "deployment":
        deployment = validate(DeploymentHook, document, "GitLab deployment event")
        return _deployment(deployment, key, settings)
    if kind == "pipeline":
        pipeline = validate(PipelineHook, document, "GitLab pipeline event")
        return _pipeline(pipeline, key, settings)
    return single(
        Note("ignored", "this GitLab event starts no backup: send deployment or pipeline events")
    )


def _deployment(event: DeploymentHook, key: str, settings: Settings) -> Delivery:
    if event.status != _STARTING:
        return single(_not_starting("deployments", event.status))
    instance_id = mapped_instance(event.environment, settings)
    if instance_id is None:
        return single(unmapped(event.environment, settings))
    return single(
        Trigger(
            source=NAME,
            key=f"{NAME}:{key}",
            trigger_id=f"deployment-{event.deployment_id}",
            instance_id=instance_id,
            callback_url=settings.callback_url,
        )
    )


def _pipeline(event: PipelineHook, key: str, settings: Settings) -> Delivery:
    """One trigger per environment that the pipeline's deploy jobs start (usually one)."""
    pipeline = event.object_attributes
    if pipeline.status != _STARTING:
        return single(_not_starting("pipelines", pipeline.status))
    environments = sorted(
        {
            build.environment.name
            for build in event.builds
            if build.environment is not None and build.environment.action == "start"
        }
    )
    if not environments:
        return single(Note("ignored", "the pipeline has no job that deploys to an environment"))
    records: list[Record] = []
    for environment in environments:
        instance_id = mapped_instance(environment, settings)
        if instance_id is None:
            records.append(unmapped(environment, settings))
            continue
        records.append(
            Trigger(
                source=NAME,
                key=f"{NAME}:{key}:{environment}",
                trigger_id=f"pipeline-{pipeline.id}-{environment}",
                instance_id=instance_id,
                callback_url=settings.callback_url,
            )
        )
    return Delivery(records=tuple(records))


def _not_starting(what: str, status: str) -> Note:
    return Note("ignored", f"{what} start a backup when they are {_STARTING}, not {status!r}")


def _idempotency_key(headers: Headers, body: bytes) -> str:
    for name in ("idempotency-key", "x-gitlab-event-uuid"):
        value = headers.get(name, "").strip()
        if value:
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()
