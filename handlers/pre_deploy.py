"""Pre-deploy: exactly one backup per trigger, its job ID reported, optionally waited for.

Everything that can refuse the trigger (callback URL, instance authorization, the create
request's rules) is checked before the API is called, so a refused trigger changes nothing.
Idempotency is stateless: the trigger fixes the backup's name and a marker in its
description, and before creating we look for that backup among the instance's manual
backups. A redelivery finds it and makes no other; of two concurrent deliveries, the loser
meets the API's busy answer (one backup at a time per instance), looks again and finds the
winner's. Once the API has answered with a job ID nothing can lose it: callbacks that fail
are reported in the outcome and logged, never raised.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from clients.callback import CallbackDelivery, CallbackSender
from clients.retry import Deadline, is_busy, is_retryable, retrying, within
from clients.taurusdb import TaurusDBClient
from config import Settings
from errors import (
    ApiError,
    ConfigurationError,
    FieldError,
    ForbiddenError,
    InvalidEventError,
    PredeployError,
)
from handlers.naming import backup_name_for, description_for, marker_for
from handlers.notify import notify
from models import Backup, BackupListItem, BackupStatus, CreateBackupRequest, Trigger

__all__ = ["BackupOutcome", "Final", "Services", "handle", "report_failure"]

_log = logging.getLogger("predeploy.pre_deploy")

Final = Literal["SUCCEEDED", "FAILED", "TIMED_OUT"]
_FINAL_CALLBACK: dict[Final, str] = {
    "SUCCEEDED": "backup.completed",
    "FAILED": "backup.failed",
    "TIMED_OUT": "backup.timed_out",
}


@dataclass(frozen=True)
class Services:
    """What a handler may use; built once per process by ``main.py``."""

    settings: Settings
    taurusdb: TaurusDBClient
    callbacks: CallbackSender


@dataclass(frozen=True)
class BackupOutcome:
    """One trigger's result: the backup, whether we made it now, how waiting and callbacks went.

    ``job_id`` is ``None`` when the backup already existed: the API keeps no link from a
    backup to its job, so only the delivery that created it learns the job ID.
    """

    trigger: Trigger
    backup: Backup
    job_id: str | None
    created: bool
    final: Final | None = None
    callbacks: dict[str, CallbackDelivery] = field(default_factory=dict)


def handle(trigger: Trigger, services: Services) -> BackupOutcome:
    settings = services.settings
    callback_url = trigger.callback_url
    if callback_url is not None:
        _check_callback(callback_url, services.callbacks)
    allowed = settings.allowed_instances
    if allowed and trigger.instance_id not in allowed:
        raise ForbiddenError(f"instance {trigger.instance_id} is not in ALLOWED_INSTANCES")
    request = _create_request(trigger)

    deadline = Deadline(settings.deadline_seconds)
    with within(deadline):
        backup, job_id, created = _ensure_backup(trigger, request, services.taurusdb, deadline)
    _log.info(
        "backup started" if created else "backup already exists",
        extra={
            "fields": {
                "outcome": "backup_started" if created else "backup_exists",
                "source": trigger.source,
                "trigger_id": trigger.trigger_id,
                "instance_id": trigger.instance_id,
                "backup_id": backup.id,
                "backup_name": backup.name,
                "backup_status": backup.status.value,
                "job_id": job_id,
            }
        },
    )
    callbacks: dict[str, CallbackDelivery] = {}
    if callback_url is not None:
        budget = min(settings.callback_retry_seconds, deadline.remaining())
        callbacks["backup.started"] = notify(
            services.callbacks,
            callback_url,
            event_type="backup.started",
            trigger=trigger,
            instance_id=trigger.instance_id,
            backup=backup,
            job_id=job_id,
            budget_seconds=budget,
        )

    final: Final | None = None
    if trigger.wait if trigger.wait is not None else settings.wait_for_completion:
        backup, final = _wait(backup, services.taurusdb, settings)
        _log.log(
            logging.INFO if final == "SUCCEEDED" else logging.ERROR,
            "backup %s",
            final.lower(),
            extra={
                "fields": {
                    "outcome": f"backup_{final.lower()}",
                    "trigger_id": trigger.trigger_id,
                    "instance_id": trigger.instance_id,
                    "backup_id": backup.id,
                    "job_id": job_id,
                }
            },
        )
        if callback_url is not None:
            event_type = _FINAL_CALLBACK[final]
            callbacks[event_type] = notify(
                services.callbacks,
                callback_url,
                event_type=event_type,
                trigger=trigger,
                instance_id=trigger.instance_id,
                backup=backup,
                job_id=job_id,
                budget_seconds=settings.callback_retry_seconds,
            )
    return BackupOutcome(trigger, backup, job_id, created, final, callbacks)


def report_failure(
    trigger: Trigger, error: PredeployError, services: Services
) -> CallbackDelivery | None:
    """A trigger that will never succeed: tell its callback (``backup.failed``) and log it.

    Queue deliveries acknowledge such a trigger instead of having it redelivered forever; this
    is how the pipeline still learns how it ended.
    """
    _log.error(
        "trigger failed for good: %s",
        error.message,
        extra={
            "fields": {
                "outcome": "trigger_failed",
                "source": trigger.source,
                "trigger_id": trigger.trigger_id,
                "instance_id": trigger.instance_id,
                "error": error.message,
            }
        },
    )
    url = trigger.callback_url
    if (
        url is None
        or services.callbacks.refusal(url) is not None
        or not services.callbacks.can_sign
    ):
        return None
    details: dict[str, object] = {"error": error.message}
    if isinstance(error, ApiError):
        details.update(error_code=error.error_code, error_msg=error.error_msg)
    return notify(
        services.callbacks,
        url,
        event_type="backup.failed",
        trigger=trigger,
        instance_id=trigger.instance_id,
        backup=None,
        job_id=None,
        budget_seconds=services.settings.callback_retry_seconds,
        extra=details,
    )


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
    return CreateBackupRequest(
        instance_id=trigger.instance_id, name=name, description=description_for(trigger)
    )


def _ensure_backup(
    trigger: Trigger, request: CreateBackupRequest, api: TaurusDBClient, deadline: Deadline
) -> tuple[Backup, str | None, bool]:
    """The trigger's backup: found (made by an earlier delivery) or created now, with retries."""
    marker = marker_for(trigger)
    for attempt in retrying(deadline):
        with attempt:
            found = _find(api, request, marker)
            if found is not None:
                return found, None, False
            try:
                result = api.create_backup(request)
            except ApiError as exc:
                if is_busy(exc):  # maybe a concurrent delivery of this trigger won the race
                    found = _find(api, request, marker)
                    if found is not None:
                        return found, None, False
                raise
            return result.backup, result.job_id, True
    raise AssertionError("unreachable: retrying() ends by returning or raising")


def _find(api: TaurusDBClient, request: CreateBackupRequest, marker: str) -> Backup | None:
    """This trigger's backup among the instance's manual backups (every page), unless failed."""
    for item in api.iter_backups(instance_id=request.instance_id, backup_type="manual"):
        if (
            item.name == request.name
            and item.description.endswith(marker)
            and item.status is not BackupStatus.FAILED
        ):
            return _as_backup(item)
    return None


def _as_backup(item: BackupListItem) -> Backup:
    return Backup(
        id=item.id,
        name=item.name,
        description=item.description,
        begin_time=item.begin_time,
        status=item.status,
        type=item.type,
        instance_id=item.instance_id,
    )


def _wait(backup: Backup, api: TaurusDBClient, settings: Settings) -> tuple[Backup, Final]:
    """Poll the backup (``GET …/backups?backup_id=``, as Terraform does) until it ends."""
    deadline = Deadline(settings.wait_timeout_seconds)
    current = backup
    while True:
        try:
            with within(deadline):
                page = api.list_backups(backup_id=backup.id)
        except PredeployError as exc:
            if not is_retryable(exc):
                raise
            page = None  # a passing fault: look again at the next poll
        if page is not None:
            if not page.backups:
                return current, "FAILED"  # deleted under our feet
            current = _as_backup(page.backups[0])
            if current.status in (BackupStatus.COMPLETED, BackupStatus.AVAILABLE):
                return current, "SUCCEEDED"
            if current.status is BackupStatus.FAILED:
                return current, "FAILED"
        if deadline.expired:
            return current, "TIMED_OUT"
        time.sleep(min(settings.poll_interval_seconds, deadline.remaining()))
