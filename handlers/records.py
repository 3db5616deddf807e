"""Serve a delivery's records one at a time: a record that fails never stops the others.

A queue redelivers what is answered non-2xx, so whether a failed record should make the
whole delivery non-2xx is decided here too: only when a later try can succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from clients.retry import is_retryable
from errors import ApiError, AuthenticationError, ConfigurationError, PredeployError
from handlers import pre_deploy
from handlers.pre_deploy import BackupStarted, Services
from models import Trigger

__all__ = ["curable_by_retry", "start_each"]

Other = TypeVar("Other")


def start_each(
    records: Sequence[Trigger | PredeployError | Other], services: Services
) -> list[BackupStarted | PredeployError | Other]:
    """Each trigger handled on its own; its failure takes its place in the list."""
    outcomes: list[BackupStarted | PredeployError | Other] = []
    for record in records:
        if isinstance(record, Trigger):
            try:
                outcomes.append(pre_deploy.handle(record, services))
            except PredeployError as exc:
                outcomes.append(exc)
        else:
            outcomes.append(record)
    return outcomes


def curable_by_retry(exc: PredeployError) -> bool:
    """Whether redelivering the record can succeed later.

    Yes when the cloud was busy, throttling or away (``clients.retry.is_retryable``), and
    when the function's own setup failed (a setting, the IAM credentials, the API
    permissions): an operator fixes those, and acknowledging the delivery would lose the
    deploy's backup. No when the event itself is wrong: it will be wrong next time too.
    """
    if is_retryable(exc):
        return True
    if isinstance(exc, ConfigurationError | AuthenticationError):
        return True
    return isinstance(exc, ApiError) and exc.status_code in (401, 403)
