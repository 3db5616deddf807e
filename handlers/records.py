"""Serve a delivery's records one at a time: a record that fails never stops the others.

A queue redelivers what is answered non-2xx, so whether a failed record should make the
whole delivery non-2xx is decided here too: only when a later try can succeed. A record that
will never succeed is acknowledged instead, after its pipeline has been told (a
``backup.failed`` callback) and the failure logged, so a poison message does not loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from clients.retry import Deadline
from errors import PredeployError
from events.base import Handshake, Note
from handlers import pre_deploy, subscriptions
from handlers.pre_deploy import BackupOutcome, DryRunOutcome, Services
from models import Trigger

__all__ = ["Outcome", "curable_by_retry", "serve_each"]

Outcome = BackupOutcome | DryRunOutcome | Note | PredeployError


def serve_each(
    records: Sequence[Trigger | Note | PredeployError], services: Services, *, queue: bool
) -> list[Outcome]:
    """Each trigger handled on its own (``pre_deploy.handle_all``: one deadline for all); its
    failure takes its place in the list.

    On a queue entry point, a trigger that failed for good gets its ``backup.failed``
    callback here, since its delivery will be acknowledged.
    """
    triggers = [record for record in records if isinstance(record, Trigger)]
    deadline = Deadline(services.settings.deadline_seconds)
    results = pre_deploy.handle_all(triggers, services, deadline)
    told = [
        queue
        and not trigger.dry_run  # a dry run calls nothing back
        and isinstance(result, PredeployError)
        and not curable_by_retry(result)
        for trigger, result in zip(triggers, results, strict=True)
    ]
    for index, (trigger, result) in enumerate(zip(triggers, results, strict=True)):
        if told[index] and isinstance(result, PredeployError):
            # each failed callback may take its share of what is left of the deadline
            share = Deadline(deadline.remaining() / sum(told[index:]))
            pre_deploy.report_failure(trigger, result, services, limit=share)
    found = iter(results)
    outcomes: list[Outcome] = []
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


def curable_by_retry(exc: PredeployError) -> bool:
    """Whether redelivering the record can succeed later (``PredeployError.redelivery_helps``).

    Yes when the cloud was busy, throttling or away, and when the function's own setup failed
    (a setting, the IAM credentials, the API permissions): an operator fixes those, and
    acknowledging the delivery would lose the deploy's backup. No when the event itself is
    wrong: it will be wrong next time too.
    """
    return exc.redelivery_helps
