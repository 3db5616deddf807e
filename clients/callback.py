"""Signed callbacks: tell the pipeline the job ID at the URL it chose.

Every callback is signed per Standard Webhooks with ``CALLBACK_SECRET`` (never sent unsigned;
with several secrets configured, for rotation, it carries one signature per secret, space
separated as the standard allows, so a receiver holding either secret verifies it). Its
``webhook-id`` is derived from the trigger so that retries and redeliveries carry the same one
(receivers dedupe on it). The URL goes through the SSRF guard (``clients/ssrf.py``) twice: in
``refusal`` before any backup is made, and again at connect time, where the connection is
pinned to the address just checked. Redirects are not followed; the receiver's body is never
read.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from clients import http
from clients.ssrf import AddressRefusedError, Resolver, SsrfGuard, connections_end_by
from clients.tls import shared_context

__all__ = ["CallbackDelivery", "CallbackSender"]


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
        secret: str | Sequence[str] | None,
        allowed_hosts: Sequence[str] = (),
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """``secret``: one ``whsec_`` secret, several separated by spaces or commas, or a list.

        ``transport`` replaces the guarded transport (tests only); ``resolver`` replaces DNS.
        """
        secrets = re.split(r"[\s,]+", secret.strip()) if isinstance(secret, str) else secret or []
        self._webhooks = [Webhook(value) for value in secrets if value]
        self._timeout = timeout
        self._guard = SsrfGuard(allowed_hosts=allowed_hosts, resolver=resolver)
        self._http = http.client(
            timeout_seconds=timeout,
            transport=transport
            or self._guard.transport(verify=shared_context(), connection_seconds=timeout),
            trust_env=False,
        )

    @property
    def can_sign(self) -> bool:
        return bool(self._webhooks)

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be called back, or ``None`` when it may (resolves the host)."""
        return self._guard.refusal(url)

    def send(
        self,
        url: str,
        *,
        message_id: str,
        payload: Mapping[str, Any],
        timeout: float | None = None,
    ) -> CallbackDelivery:
        """POST the signed payload once; report the outcome instead of raising.

        ``timeout`` (less than ``CALLBACK_TIMEOUT_SECONDS``: what is left of the event's
        deadline) bounds the whole attempt, connection included.
        """
        if not self._webhooks:
            return CallbackDelivery(delivered=False, error="CALLBACK_SECRET is not set")
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        now = datetime.now(tz=UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(w.sign(message_id, now, body) for w in self._webhooks),
        }
        seconds = self._timeout if timeout is None else max(0.001, min(timeout, self._timeout))
        limits = http.timeout(seconds)
        try:
            # Streamed and closed unread: the receiver's body is neither needed nor trusted.
            with (
                connections_end_by(time.monotonic() + seconds),
                self._http.stream(
                    "POST", url, content=body.encode(), headers=headers, timeout=limits
                ) as answer,
            ):
                status = answer.status_code
        except AddressRefusedError as exc:
            return CallbackDelivery(
                delivered=False,
                error=f"the callback host now resolves to a {exc.reason} address; not sent",
            )
        except httpx.TimeoutException:
            return CallbackDelivery(delivered=False, error="the callback receiver timed out")
        except httpx.HTTPError as exc:
            return CallbackDelivery(
                delivered=False,
                error=f"the callback receiver is unreachable ({type(exc).__name__})",
            )
        if 200 <= status < 300:
            return CallbackDelivery(delivered=True, status=status)
        return CallbackDelivery(
            delivered=False, status=status, error=f"the callback receiver answered {status}"
        )

    def close(self) -> None:
        self._http.close()
