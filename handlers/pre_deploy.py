"""Pre-deploy: exactly one backup per trigger, its job ID reported, optionally waited for.

Everything that can refuse a trigger (callback URL, instance authorization, the create request's
rules) is checked for every trigger before the API is called, so a refused trigger changes
nothing. Idempotency is stateless: the trigger fixes the backup's name and a marker in its
description, and before creating we look for that backup among the instance's manual backups of
the trigger's window (``handlers.window``: one page however long the instance's history; a
delivery older than the window is refused). A redelivery finds it and makes no other; of two
concurrent deliveries, the loser meets the API's busy answer (one backup at a time per
instance), looks again and finds the winner's. Only when there is no such backup yet is the
instance itself asked whether it is ``ACTIVE`` (``precheck``). Once the API has answered with a
job ID nothing can lose it: callbacks that fail are reported in the outcome and logged, never
raised.

The triggers of one delivery (an event for several instances, a batch) are served one after
another within one deadline; with waiting, every backup is started first and then all are waited
for, so they build side by side. A trigger's failure is its result, not the delivery's. A dry
run (``Trigger.dry_run``) goes through the same checks and look-up but creates, deletes and
calls back nothing. Retention (``RETENTION_KEEP``) runs after a backup was made or found, once
the answer is settled, within what is left of the deadline (``handlers.retention``: bounded,
guarded).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

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
from handlers import retention
from handlers.naming import backup_name_for, description_for, identities
from handlers.notify import notify
from handlers.precheck import require_active
from handlers.retention import RetentionReport
from handlers.services import Services
from handlers.window import Window, backups_in, window_for
from models import Backup, BackupListItem, BackupStatus, CreateBackupRequest, Instance, Trigger

__all__ = [
    "BackupOutcome",
    "DryRunOutcome",
    "Final",
    "TriggerOutcome",
    "check",
    "handle",
    "report_failure",
]

_log = logging.getLogger("predeploy.pre_deploy")

Final = Literal["SUCCEEDED", "FAILED", "TIMED_OUT"]
_FINAL_CALLBACK: dict[Final, str] = {
    "SUCCEEDED": "backup.completed",
    "FAILED": "backup.failed",
    "TIMED_OUT": "backup.timed_out",
}


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
    retention: RetentionReport | None = None

    @property
    def name(self) -> str:
        """What happened, as the outcome log line names it: ``backup_started`` (made now),
        ``backup_exists`` (found), after waiting ``backup_succeeded``/``_failed``/``_timed_out``."""
        if self.final is not None:
            return f"backup_{self.final.lower()}"
        return "backup_started" if self.created else "backup_exists"


@dataclass(frozen=True)
class DryRunOutcome:
    """What a real run would do: the backup it would make (or the one it would find)."""

    trigger: Trigger
    request: CreateBackupRequest
    instance: Instance
    existing: Backup | None
    retention: RetentionReport | None = None


TriggerOutcome = BackupOutcome | DryRunOutcome | PredeployError
"""One trigger's result: what was done, or why not (its failure takes its place)."""


def handle(
    triggers: Sequence[Trigger], services: Services, deadline: Deadline | None = None
) -> list[TriggerOutcome]:
    """Every trigger of one delivery, one result each, in order.

    First every trigger is checked (``check``: nothing upstream yet), then the ones that
    passed are started one after another within one deadline (``DEADLINE_SECONDS`` from
    now unless given), then, where asked for, waited for within one
    ``WAIT_TIMEOUT_SECONDS``.
    """
    settings = services.settings
    deadline = deadline or Deadline(settings.deadline_seconds)
    checked: list[CreateBackupRequest | PredeployError] = []
    for trigger in triggers:
        try:
            checked.append(check(trigger, services))
        except PredeployError as exc:
            checked.append(exc)
    started: list[TriggerOutcome] = []
    to_start = sum(1 for request in checked if not isinstance(request, PredeployError))
    for trigger, request in zip(triggers, checked, strict=True):
        if isinstance(request, PredeployError):
            started.append(request)
            continue
        try:
            started.append(_start(trigger, request, services, deadline, to_start))
        except PredeployError as exc:
            started.append(exc)
        to_start -= 1
    waiting = Deadline(settings.wait_timeout_seconds)
    done: list[TriggerOutcome] = []
    for result in started:
        if isinstance(result, BackupOutcome):
            try:
                result = _finish(result, services, deadline, waiting)
            except PredeployError as exc:
                result = exc
        done.append(result)
    return done


def check(trigger: Trigger, services: Services) -> CreateBackupRequest:
    """What can be refused without asking the API: callback URL, instance, the request's rules."""
    if trigger.callback_url is not None:
        _check_callback(trigger.callback_url, services.callbacks)
    allowed = services.settings.allowed_instances
    if allowed and trigger.instance_id not in allowed:
        raise ForbiddenError(f"instance {trigger.instance_id} is not in ALLOWED_INSTANCES")
    window_for(trigger, services.settings)  # a delivery older than the window is refused
    return _create_request(trigger, services.settings.secret_values())


def _start(
    trigger: Trigger,
    request: CreateBackupRequest,
    services: Services,
    deadline: Deadline,
    shares: int = 1,
) -> BackupOutcome | DryRunOutcome:
    """Find or create the trigger's backup and say so at the callback URL (or a dry run).

    ``shares``: how many triggers (this one included) still have to be started within
    ``deadline``; the callback may take this trigger's share of the time left.
    """
    settings = services.settings
    callback_url = trigger.callback_url
    with within(deadline):
        window = window_for(trigger, settings)
        if trigger.dry_run:
            return _dry_run(trigger, request, services, deadline, window)
        backup, job_id, created = _ensure_backup(
            trigger, request, services.taurusdb, deadline, window, settings.secret_values()
        )
    callbacks: dict[str, CallbackDelivery] = {}
    if callback_url is not None:
        # Its share of what is left: the triggers after it still need time for theirs.
        share = Deadline(deadline.remaining() / shares)
        callbacks["backup.started"] = notify(
            services.callbacks,
            callback_url,
            event_type="backup.started",
            trigger=trigger,
            backup=backup,
            job_id=job_id,
            budget_seconds=settings.callback_retry_seconds,
            limit=share,
        )
    return BackupOutcome(trigger, backup, job_id, created, callbacks=callbacks)


def _finish(
    outcome: BackupOutcome, services: Services, deadline: Deadline, waiting: Deadline
) -> BackupOutcome:
    """Wait for the backup if asked to, call back how it ended, then apply retention."""
    settings = services.settings
    trigger, backup, job_id = outcome.trigger, outcome.backup, outcome.job_id
    callback_url = trigger.callback_url
    callbacks = dict(outcome.callbacks)
    final: Final | None = None
    if trigger.wait if trigger.wait is not None else settings.wait_for_completion:
        # Progress, not an outcome: the outcome line may come minutes later, the job ID now.
        _log.info("waiting for the backup", extra={"fields": _progress(outcome)})
        backup, final = _wait(backup, services.taurusdb, settings, waiting)
        if callback_url is not None:
            event_type = _FINAL_CALLBACK[final]
            callbacks[event_type] = notify(
                services.callbacks,
                callback_url,
                event_type=event_type,
                trigger=trigger,
                backup=backup,
                job_id=job_id,
                budget_seconds=settings.callback_retry_seconds,
            )

    report: RetentionReport | None = None
    if settings.retention_keep and final in (None, "SUCCEEDED"):
        # Without waiting: the event's deadline (the new backup is BUILDING and does not count
        # yet). After waiting: a fresh one, the event's has long passed.
        budget = deadline if final is None else Deadline(settings.deadline_seconds)
        report = retention.apply(
            services.taurusdb,
            trigger.instance_id,
            settings.retention_keep,
            backup.id,
            budget,
            guard=retention.Guard.of(settings, trigger),
        )
    return replace(outcome, backup=backup, final=final, callbacks=callbacks, retention=report)


def _dry_run(
    trigger: Trigger,
    request: CreateBackupRequest,
    services: Services,
    deadline: Deadline,
    window: Window,
) -> DryRunOutcome:
    """The checks and the look-up of a real run; no create, no delete, no callback.

    The instance must be ``ACTIVE`` unless the trigger's backup exists already (then a real run
    would answer with it). A busy instance is reported at once, not waited for.
    """
    api = services.taurusdb
    known = identities(trigger, services.settings.secret_values())
    existing, instance = _look_up_with_retries(api, request, known, deadline, window)
    if existing is None:
        require_active(instance)
    settings = services.settings
    keep = settings.retention_keep
    guard = retention.Guard.of(settings, trigger)
    report = retention.preview(api, trigger.instance_id, keep, deadline, guard) if keep else None
    return DryRunOutcome(trigger, request, instance, existing, report)


def report_failure(
    trigger: Trigger, error: PredeployError, services: Services, limit: Deadline | None = None
) -> CallbackDelivery | None:
    """A trigger that will never succeed: tell its callback (``backup.failed``).

    Queue deliveries acknowledge such a trigger instead of having it redelivered forever; this
    is how the pipeline still learns how it ended. ``limit`` bounds the callback (the event's
    deadline).
    """
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
        backup=None,
        job_id=None,
        budget_seconds=services.settings.callback_retry_seconds,
        extra=details,
        limit=limit,
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


def _create_request(trigger: Trigger, secrets: Sequence[str]) -> CreateBackupRequest:
    name = trigger.name if trigger.name is not None else backup_name_for(trigger, secrets)
    description = description_for(trigger, secrets)
    return CreateBackupRequest(instance_id=trigger.instance_id, name=name, description=description)


def _ensure_backup(
    trigger: Trigger,
    request: CreateBackupRequest,
    api: TaurusDBClient,
    deadline: Deadline,
    window: Window,
    secrets: Sequence[str],
) -> tuple[Backup, str | None, bool]:
    """The trigger's backup: found (made by an earlier delivery) or created now, with retries."""
    marker = identities(trigger, secrets)
    for attempt in retrying(deadline):
        with attempt:
            found, instance = _look_up(api, request, marker, window)
            if found is not None:
                return found, None, False
            require_active(instance.result())  # busy: tried again
            try:
                result = api.create_backup(request)
            except ApiError as exc:
                if is_busy(exc):  # maybe a concurrent delivery of this trigger won the race
                    found = _find_backup(api, request, marker, window)
                    if found is not None:
                        return found, None, False
                raise
            return result.backup, result.job_id, True
    raise AssertionError("unreachable: retrying() ends by returning or raising")


Known = tuple[tuple[str, str], ...]
"""The (name, marker) pairs under which a trigger's backup is recognised."""

_BACKGROUND = ThreadPoolExecutor(max_workers=8, thread_name_prefix="predeploy-api")
"""A few threads for API calls that can run side by side with the one a trigger waits on."""

_T = TypeVar("_T")


def _in_background(call: Callable[[str], _T], argument: str) -> Future[_T]:
    """``call(argument)`` on another thread, with this one's context (the deadline among it)."""
    context = contextvars.copy_context()
    return _BACKGROUND.submit(context.run, call, argument)


def _look_up_with_retries(
    api: TaurusDBClient,
    request: CreateBackupRequest,
    marker: Known,
    deadline: Deadline,
    window: Window,
) -> tuple[Backup | None, Instance]:
    """The trigger's backup, if it exists, and the instance; retried on passing faults."""
    for attempt in retrying(deadline):
        with attempt:
            found, instance = _look_up(api, request, marker, window)
            return found, instance.result()
    raise AssertionError("unreachable: retrying() ends by returning or raising")


def _look_up(
    api: TaurusDBClient, request: CreateBackupRequest, marker: Known, window: Window
) -> tuple[Backup | None, Future[Instance]]:
    """The look-up, with the instance (the pre-check's answer) asked for side by side.

    One round trip less before the create; the instance's answer (or failure) has arrived
    when this returns, so nothing of the event outlives its answer.
    """
    instance = _in_background(api.get_instance, request.instance_id)
    try:
        found = _find_backup(api, request, marker, window)
    finally:
        futures.wait([instance])
    return found, instance


def _find_backup(
    api: TaurusDBClient, request: CreateBackupRequest, marker: Known, window: Window
) -> Backup | None:
    """This trigger's backup among the instance's manual backups in its window, unless failed.

    ``marker``: the (name, marker) pairs it may carry (``naming.identities``: the current
    derivation, and the previous release's).
    """
    for item in backups_in(api, request.instance_id, window):
        if (
            any(item.name == n and item.description.endswith(m) for n, m in marker)
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


def _progress(outcome: BackupOutcome) -> dict[str, str | None]:
    trigger, backup = outcome.trigger, outcome.backup
    return {
        "source": trigger.source,
        "trigger_id": trigger.trigger_id,
        "instance_id": trigger.instance_id,
        "backup_id": backup.id,
        "backup_name": backup.name,
        "job_id": outcome.job_id,
    }


def _wait(
    backup: Backup, api: TaurusDBClient, settings: Settings, deadline: Deadline
) -> tuple[Backup, Final]:
    """Poll the backup (``GET …/backups?backup_id=``, as Terraform does) until it ends."""
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
