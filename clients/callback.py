"""Signed callbacks: tell the pipeline the job ID at the URL it chose.

Every callback is signed per Standard Webhooks with ``CALLBACK_SECRET`` (never sent unsigned),
its ``webhook-id`` is derived from the trigger so that retries and redeliveries carry the same
one (receivers dedupe on it), and redirects are not followed. The URL policy here is the first
line of SSRF defence: https only, unless the host is listed in ``CALLBACK_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

__all__ = ["CallbackDelivery", "CallbackSender"]

_log = logging.getLogger("predeploy.callback")


@dataclass(frozen=True)
class CallbackDelivery:
    """How one callback went; ``status`` is the receiver's HTTP status when it answered."""

    delivered: bool
    status: int | None = None
    error: str | None = None


class CallbackSender:
    """Signs and posts callbacks through one reused ``httpx.Client``."""

    def __init__(
        self,
        *,
        secret: str | None,
        allowed_hosts: Sequence[str] = (),
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._webhook = Webhook(secret) if secret else None
        self._allowed_hosts = frozenset(host.lower() for host in allowed_hosts)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "predeploy-backup/0.1"},
        )

    @property
    def can_sign(self) -> bool:
        return self._webhook is not None

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be called back, or ``None`` when it may."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            return "must be a valid absolute URL"
        if parts.scheme not in ("https", "http") or not host:
            return "must be an absolute https:// URL"
        if parts.username is not None or parts.password is not None:
            return "must not contain user information (user:password@)"
        if parts.scheme == "http" and host not in self._allowed_hosts:
            return "must use https (http is allowed only for hosts in CALLBACK_ALLOWED_HOSTS)"
        return None

    def send(self, url: str, *, message_id: str, payload: Mapping[str, Any]) -> CallbackDelivery:
        """POST the signed payload once; report the outcome instead of raising."""
        if self._webhook is None:
            return CallbackDelivery(delivered=False, error="CALLBACK_SECRET is not set")
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        now = datetime.now(tz=UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, now, body),
        }
        try:
            response = self._http.post(url, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            return CallbackDelivery(delivered=False, error="the callback receiver timed out")
        except httpx.TransportError as exc:
            return CallbackDelivery(
                delivered=False,
                error=f"the callback receiver is unreachable ({type(exc).__name__})",
            )
        if response.is_success:
            return CallbackDelivery(delivered=True, status=response.status_code)
        return CallbackDelivery(
            delivered=False,
            status=response.status_code,
            error=f"the callback receiver answered {response.status_code}",
        )

    def close(self) -> None:
        self._http.close()
