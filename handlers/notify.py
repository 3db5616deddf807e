"""Calling the pipeline back: retries within a budget, one stable ``webhook-id``, every outcome
logged with the job ID.

The ``webhook-id`` is derived from the trigger, the instance and the event type, so retries
here and redeliveries of the trigger later carry the same id: the receiver dedupes, and a
callback lost once comes through with the sender's next delivery.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from clients.callback import CallbackDelivery, CallbackSender
from clients.retry import Deadline, retrying
from models import Backup, Trigger

__all__ = ["CallbackFailedError", "message_id", "notify"]

_log = logging.getLogger("predeploy.callback")

# Worth another try: the receiver could not be reached, timed out, throttles or failed.
# 410 Gone means "stop sending"; any other answer will not change by asking again.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_SHORTEST_ATTEMPT = 0.05
_NO_TIME = "no time was left for the callback within DEADLINE_SECONDS"


class CallbackFailedError(Exception):
    """Raised inside the retry loop so that stamina sees a failed attempt."""

    def __init__(self, delivery: CallbackDelivery) -> None:
        super().__init__(delivery.error or "callback failed")
        self.delivery = delivery


def _retryable(exc: BaseException) -> bool:
    if not isinstance(exc, CallbackFailedError):
        return False
    status = exc.delivery.status
    return status is None or status in _RETRY_STATUSES


def message_id(trigger: Trigger, event_type: str) -> str:
    """The ``webhook-id``: the same for every retry and redelivery of one trigger's event."""
    seed = f"{trigger.key}|{trigger.instance_id}|{event_type}"
    return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def notify(
    callbacks: CallbackSender,
    url: str,
    *,
    event_type: str,
    trigger: Trigger,
    backup: Backup | None,
    job_id: str | None,
    budget_seconds: float,
    extra: dict[str, Any] | None = None,
    limit: Deadline | None = None,
) -> CallbackDelivery:
    """Send one callback, retrying within ``budget_seconds`` (at least one attempt).

    ``limit`` (the event's deadline, or this callback's share of it) bounds every attempt
    too: a receiver that hangs costs that much, no more, and no attempt starts without time.
    """
    payload: dict[str, Any] = {
        "type": event_type,
        "timestamp": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "job_id": job_id,
        "instance_id": trigger.instance_id,
        "backup": backup.model_dump(mode="json") if backup is not None else None,
        "trigger_id": trigger.trigger_id,
        "source": trigger.source,
        **(extra or {}),
    }
    webhook_id = message_id(trigger, event_type)
    budget = budget_seconds if limit is None else min(budget_seconds, limit.remaining())
    delivery, attempts = _send(callbacks, url, webhook_id, payload, Deadline(budget), limit)
    fields = {
        "outcome": "callback_delivered" if delivery.delivered else "callback_failed",
        "callback_type": event_type,
        "trigger_id": trigger.trigger_id,
        "instance_id": trigger.instance_id,
        "backup_id": backup.id if backup is not None else None,
        "job_id": job_id,
        "webhook_id": webhook_id,
        "callback_host": urlsplit(url).hostname or "",
        "callback_status": delivery.status,
        "attempts": attempts,
    }
    if delivery.delivered:
        _log.info("callback delivered", extra={"fields": fields})
    else:
        fields["error"] = delivery.error
        _log.error("callback failed: %s", delivery.error, extra={"fields": fields})
    return delivery


def _send(
    callbacks: CallbackSender,
    url: str,
    webhook_id: str,
    payload: dict[str, Any],
    deadline: Deadline,
    limit: Deadline | None,
) -> tuple[CallbackDelivery, int]:
    """Attempts until one is delivered, the receiver's answer is final, or time is up; the
    last delivery and how many attempts were made."""
    delivery = CallbackDelivery(delivered=False, error="not attempted")
    attempts = 0
    try:
        for attempt in retrying(deadline, on=_retryable, wait_initial=0.25, wait_max=2.0):
            with attempt:
                left = None if limit is None else limit.remaining()
                if left is not None and left < _SHORTEST_ATTEMPT:
                    return CallbackDelivery(delivered=False, error=_NO_TIME), attempts
                attempts += 1
                delivery = callbacks.send(url, message_id=webhook_id, payload=payload, timeout=left)
                if not delivery.delivered:
                    raise CallbackFailedError(delivery)
    except CallbackFailedError as exc:
        delivery = exc.delivery
    return delivery, attempts
