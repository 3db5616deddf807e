"""How each sender is recognised, apart from the module that verifies and parses its events.

A process loads a source's module (its pydantic models, and for some a heavy library:
``cryptography`` for SMN, ``cloudevents``) on the first delivery that matches it, not at
start: most deployments only ever see one or two senders, and every module loaded at start
is paid by every cold start. Recognising a delivery must therefore not need the module:
each sender's ``matches`` lives here, with its ``NAME`` and ``LABEL``; the module imports
them from here. ``Sender`` stands in for the module (``verify``, ``parse``; ``open``, ``seal``
for an envelope) and imports it on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from config import Settings
from events.base import Delivery, Headers, json_value, media_type

__all__ = [
    "APIG",
    "CLOUDEVENTS",
    "FUNCTIONGRAPH",
    "GENERIC",
    "GITHUB",
    "GITLAB",
    "PUBSUB",
    "PUBSUB_MESSAGE_ID",
    "PUBSUB_PUBLISH_TIME",
    "SIGNATURE_HEADERS",
    "SMN",
    "SVIX_HEADERS",
    "Sender",
    "functiongraph_kind",
    "pubsub_envelope",
    "redelivers_every_failure",
]

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
"""Standard Webhooks' headers (the generic event's signature)."""
SVIX_HEADERS = {
    "svix-id": "webhook-id",
    "svix-timestamp": "webhook-timestamp",
    "svix-signature": "webhook-signature",
}
"""Svix's names for the Standard Webhooks headers, which senders built on Svix send."""


@dataclass(frozen=True)
class Sender:
    """One sender as the entry points see it: ``NAME``, ``LABEL``, a cheap ``matches``.

    ``verify``/``parse`` (and ``open``/``seal`` for an envelope) hand over to
    ``events.<module>``, imported the first time one of them is called.
    """

    NAME: str
    LABEL: str
    recognise: Callable[[Headers, bytes], bool]
    module: str
    needs_certificates: bool = False

    def matches(self, headers: Headers, body: bytes) -> bool:
        """Whether the request is this sender's; never raises, never loads the module."""
        return self.recognise(headers, body)

    def load(self) -> ModuleType:
        """The sender's module (imported once; Python's import lock makes it thread-safe)."""
        return importlib.import_module(f"events.{self.module}")

    def verify(
        self,
        headers: Headers,
        body: bytes,
        settings: Settings,
        certificates: Callable[[str], bytes] | None = None,
    ) -> None:
        if self.needs_certificates:
            self.load().verify(headers, body, settings, certificates)
        else:
            self.load().verify(headers, body, settings)

    def parse(self, headers: Headers, body: bytes, settings: Settings) -> Delivery:
        delivery: Delivery = self.load().parse(headers, body, settings)
        return delivery

    def open(self, headers: Headers, body: bytes) -> tuple[dict[str, str], bytes]:
        opened: tuple[dict[str, str], bytes] = self.load().open(headers, body)
        return opened

    def seal(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        sealed: tuple[int, dict[str, Any], dict[str, str]] = self.load().seal(status, body, headers)
        return sealed


def _generic(headers: Headers, body: bytes) -> bool:
    """The fallback: JSON, or anything that tries to authenticate the way this source does."""
    found = media_type(headers)
    return (
        found == "application/json"
        or found.endswith("+json")
        or "authorization" in headers
        or any(name in headers for name in SIGNATURE_HEADERS)
        or any(name in headers for name in SVIX_HEADERS)
    )


def _github(headers: Headers, body: bytes) -> bool:
    return "x-github-event" in headers


def _gitlab(headers: Headers, body: bytes) -> bool:
    return "x-gitlab-event" in headers


def _smn(headers: Headers, body: bytes) -> bool:
    return "x-smn-message-type" in headers


def _cloudevents(headers: Headers, body: bytes) -> bool:
    return any(name.startswith("ce-") for name in headers) or media_type(headers).startswith(
        "application/cloudevents"
    )


PUBSUB_MESSAGE_ID = "x-goog-pubsub-message-id"
PUBSUB_PUBLISH_TIME = "x-goog-pubsub-publish-time"
_PUBSUB_METADATA = (PUBSUB_MESSAGE_ID, PUBSUB_PUBLISH_TIME, "x-goog-pubsub-subscription-name")
_PUBSUB_USER_AGENT = "apis-google"


def redelivers_every_failure(headers: Headers) -> bool:
    """Whether the request comes from Pub/Sub push, which redelivers every non-2xx answer."""
    return headers.get("user-agent", "").lower().startswith(_PUBSUB_USER_AGENT) or any(
        name in headers for name in _PUBSUB_METADATA
    )


def pubsub_envelope(document: object) -> bool:
    """Whether ``document`` is a Pub/Sub push envelope (``message`` and ``subscription``)."""
    return (
        isinstance(document, dict)
        and isinstance(document.get("message"), dict)
        and isinstance(document.get("subscription"), str)
    )


def _pubsub(headers: Headers, body: bytes) -> bool:
    if redelivers_every_failure(headers):
        return True
    return media_type(headers) in ("application/json", "") and pubsub_envelope(json_value(body))


def functiongraph_kind(document: Any) -> str | None:
    """Which FunctionGraph trigger event ``document`` is (``smn``, ``kafka``, ``timer``), if any."""
    if not isinstance(document, dict):
        return None
    records = document.get("record")
    first = records[0] if isinstance(records, list) and records else None
    if isinstance(first, dict) and first.get("event_source") == "smn":
        return "smn"
    trigger_type = document.get("trigger_type")
    if trigger_type == "KAFKA":
        return "kafka"
    if trigger_type == "TIMER":
        return "timer"
    return None


def _functiongraph(headers: Headers, body: bytes) -> bool:
    return functiongraph_kind(json_value(body)) is not None


def _apig(headers: Headers, body: bytes) -> bool:
    document = json_value(body)
    return (
        isinstance(document, dict)
        and isinstance(document.get("requestContext"), dict)
        and isinstance(document.get("httpMethod"), str)
    )


GENERIC = Sender(
    "generic", "the generic pre-deploy event (Content-Type: application/json)", _generic, "generic"
)
GITHUB = Sender("github", "GitHub webhooks (X-GitHub-Event: deployment or ping)", _github, "github")
GITLAB = Sender(
    "gitlab",
    "GitLab webhooks (X-Gitlab-Event: Deployment Hook)",
    _gitlab,
    "gitlab",
)
SMN = Sender(
    "smn",
    "Open Telekom Cloud SMN HTTP(S) subscriptions (X-SMN-MESSAGE-TYPE header)",
    _smn,
    "smn",
    needs_certificates=True,
)
CLOUDEVENTS = Sender(
    "cloudevents",
    "CloudEvents 1.0 (binary: ce-specversion, ce-id, ce-source, ce-type headers; structured: "
    "application/cloudevents+json; batched: application/cloudevents-batch+json)",
    _cloudevents,
    "cloudevents",
)
PUBSUB = Sender(
    "pubsub",
    'Google Pub/Sub push ({"message": {"data", "messageId", …}, "subscription"}, or unwrapped: '
    "User-Agent APIs-Google or x-goog-pubsub-* headers)",
    _pubsub,
    "pubsub",
)
FUNCTIONGRAPH = Sender(
    "functiongraph",
    "FunctionGraph trigger events (SMN, DMS for Kafka, timer) on POST /invoke",
    _functiongraph,
    "functiongraph",
)
APIG = Sender(
    "apig",
    "FunctionGraph APIG events (httpMethod, headers, body, requestContext)",
    _apig,
    "apig",
)
