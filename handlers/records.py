"""Serve a delivery's records one at a time: a record that fails never stops the others.

A queue redelivers what is answered non-2xx; only a failure a later try can cure
(``PredeployError.redelivery_helps``) makes the answer non-2xx (responses.py). A queue's record
that will never succeed is acknowledged instead, so a poison message does not loop: its
pipeline is told here (a ``backup.failed`` callback), its outcome line says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clients.retry import Deadline
from errors import PredeployError
from handlers import pre_deploy, subscriptions
from handlers.pre_deploy import BackupOutcome, DryRunOutcome, TriggerOutcome
from handlers.services import Services
from models import Handshake, Note, Trigger

__all__ = ["HANDLERS", "RecordOutcome", "handle_delivery"]

RecordOutcome = BackupOutcome | DryRunOutcome | Note | PredeployError
"""One record's outcome: a trigger's (``TriggerOutcome``), or the note the record was."""

Handler = Callable[[Sequence[Trigger], Services, Deadline], list[TriggerOutcome]]

#: The handler of each ``Trigger.kind``: it takes a delivery's triggers of its kind, in order,
#: and the delivery's deadline, and returns one outcome each.
HANDLERS: dict[str, Handler] = {"pre-deploy": pre_deploy.handle}


def handle_delivery(
    records: Sequence[Trigger | Note | PredeployError], services: Services, *, queue: bool
) -> list[RecordOutcome]:
    """Each trigger handled on its own by its kind's handler (``pre_deploy.handle``: one
    deadline for all); its failure takes its place in the list.

    On a queue entry point, a trigger that failed for good gets its ``backup.failed``
    callback here, since its delivery will be acknowledged.
    """
    triggers = [record for record in records if isinstance(record, Trigger)]
    deadline = Deadline(services.settings.deadline_seconds)
    results = _handle_triggers(triggers, services, deadline)
    told = [
        queue
        and not trigger.dry_run  # a dry run calls nothing back
        and isinstance(result, PredeployError)
        and not result.redelivery_helps  # acknowledged: told here, never redelivered
        for trigger, result in zip(triggers, results, strict=True)
    ]
    for index, (trigger, result) in enumerate(zip(triggers, results, strict=True)):
        if told[index] and isinstance(result, PredeployError):
            # each failed callback may take its share of what is left of the deadline
            share = Deadline(deadline.remaining() / sum(told[index:]))
            pre_deploy.report_failure(trigger, result, services, limit=share)
    found = iter(results)
    outcomes: list[RecordOutcome] = []
    for record in records:
        if isinstance(record, Handshake):
            outcomes.append(
                subscriptions.confirm(record, services.smn.confirm if services.smn else None)
            )
        elif isinstance(record, Trigger):
            outcomes.append(next(found))
        else:
            outcomes.append(record)
    return outcomes


def _handle_triggers(
    triggers: Sequence[Trigger], services: Services, deadline: Deadline
) -> list[TriggerOutcome]:
    """Each kind's triggers to its handler (``HANDLERS``), all within ``deadline``; the
    outcomes in the triggers' order."""
    outcomes: dict[int, TriggerOutcome] = {}
    for kind in dict.fromkeys(trigger.kind for trigger in triggers):
        indexes = [index for index, trigger in enumerate(triggers) if trigger.kind == kind]
        handled = HANDLERS[kind]([triggers[index] for index in indexes], services, deadline)
        outcomes.update(zip(indexes, handled, strict=True))
    return [outcomes[index] for index in range(len(triggers))]
