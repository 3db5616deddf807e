"""Pre-deploy: create the backup, then tell the pipeline the job ID.

Everything that can refuse the trigger (callback URL, instance authorization, the create
request's rules) is checked before the API is called, so a refused trigger changes nothing.
Once the API has answered with a job ID, nothing can lose it: a failed callback is reported
in the result and logged, never raised.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from clients.callback import CallbackDelivery, CallbackSender
from clients.taurusdb import TaurusDBClient
from config import Settings
from errors import ConfigurationError, FieldError, ForbiddenError, InvalidEventError
from handlers.naming import backup_name_for, description_for
from models import CreateBackupRequest, CreateBackupResult, Trigger

__all__ = ["BackupStarted", "Services", "callback_message_id", "handle"]

_log = logging.getLogger("predeploy.pre_deploy")


@dataclass(frozen=True)
class Services:
    """What a handler may use; built once per process by ``main.py``."""

    settings: Settings
    taurusdb: TaurusDBClient
    callbacks: CallbackSender


@dataclass(frozen=True)
class BackupStarted:
    """The outcome of one trigger: the API's answer and how the callback went."""

    trigger: Trigger
    result: CreateBackupResult
    callback: CallbackDelivery | None


def callback_message_id(trigger: Trigger, instance_id: str, event_type: str) -> str:
    """The ``webhook-id``: the same for every retry and redelivery of one trigger's event."""
    seed = f"{trigger.key}|{instance_id}|{event_type}"
    return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def handle(trigger: Trigger, services: Services) -> BackupStarted:
    callback_url = trigger.callback_url
    if callback_url is not None:
        _check_callback(callback_url, services.callbacks)
    allowed = services.settings.allowed_instances
    if allowed and trigger.instance_id not in allowed:
        raise ForbiddenError(f"instance {trigger.instance_id} is not in ALLOWED_INSTANCES")
    request = _create_request(trigger)

    result = services.taurusdb.create_backup(request)
    _log.info(
        "backup started",
        extra={
            "fields": {
                "outcome": "backup_started",
                "source": trigger.source,
                "trigger_id": trigger.trigger_id,
                "instance_id": trigger.instance_id,
                "backup_id": result.backup.id,
                "backup_name": result.backup.name,
                "job_id": result.job_id,
            }
        },
    )
    delivery = None
    if callback_url is not None:
        delivery = _call_back(trigger, result, callback_url, services.callbacks)
    return BackupStarted(trigger=trigger, result=result, callback=delivery)


def _check_callback(url: str, callbacks: CallbackSender) -> None:
    reason = callbacks.refusal(url)
    if reason is not None:
        raise InvalidEventError(
            "the callback URL is refused", [FieldError(field="callback_url", rule=reason)]
        )
    if not callbacks.can_sign:
        raise ConfigurationError(
            "CALLBACK_SECRET is not set: callbacks are always signed, so an event with a "
            "callback URL cannot be served"
        )


def _create_request(trigger: Trigger) -> CreateBackupRequest:
    name = trigger.name if trigger.name is not None else backup_name_for(trigger)
    description = (
        trigger.description if trigger.description is not None else description_for(trigger)
    )
    try:
        return CreateBackupRequest(
            instance_id=trigger.instance_id, name=name, description=description
        )
    except ValidationError as exc:  # derived values obey the rules; this guards the code
        errors = [FieldError(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        raise InvalidEventError("the backup request is invalid", errors) from None


def _call_back(
    trigger: Trigger, result: CreateBackupResult, url: str, callbacks: CallbackSender
) -> CallbackDelivery:
    event_type = "backup.started"
    payload: dict[str, Any] = {
        "type": event_type,
        "timestamp": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "job_id": result.job_id,
        "instance_id": result.backup.instance_id or trigger.instance_id,
        "backup": result.backup.model_dump(mode="json"),
        "trigger_id": trigger.trigger_id,
        "source": trigger.source,
    }
    message_id = callback_message_id(trigger, trigger.instance_id, event_type)
    delivery = callbacks.send(url, message_id=message_id, payload=payload)
    fields = {
        "outcome": "callback_delivered" if delivery.delivered else "callback_failed",
        "trigger_id": trigger.trigger_id,
        "job_id": result.job_id,
        "webhook_id": message_id,
        "callback_host": _host(url),
        "callback_status": delivery.status,
    }
    if delivery.delivered:
        _log.info("callback delivered", extra={"fields": fields})
    else:
        _log.error(
            "callback failed: %s",
            delivery.error,
            extra={"fields": {**fields, "error": delivery.error}},
        )
    return delivery


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""
