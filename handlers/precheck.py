"""The instance pre-check: a backup is made only of an ``ACTIVE`` instance.

``GET …/instances/{id}`` tells the instance's status (research/otc-api.md §2.4). A passing
status (a backup or another operation runs) is ``InstanceBusyError``: the retry machinery
tries again within the deadline, then the caller gets ``503`` with ``Retry-After``. A status
that waiting will not end is ``InstanceNotActiveError`` (``409``), naming it. A status this
function does not know counts as the latter: a person should look before backups go on.
"""

from __future__ import annotations

from errors import InstanceBusyError, InstanceNotActiveError
from models import Instance

__all__ = ["PASSING", "READY", "STOPPED", "require_active"]

READY = frozenset({"ACTIVE", "NORMAL"})
"""``ACTIVE`` is the documented status; ``NORMAL`` is its name in Huawei's unified vocabulary."""

PASSING = frozenset(
    {
        "BACKING UP",
        "BUILD",
        "MODIFYING",
        "MODIFYING INSTANCE TYPE",
        "MODIFYING DATABASE PORT",
        "REBOOTING",
        "RESTORING",
        "SWITCHOVER",
        "MIGRATING",
    }
)
"""Statuses that end by themselves: the instance is busy, a later try goes through."""

STOPPED = {
    "FROZEN": "the instance is frozen (e.g. the account is in arrears); unfreeze it first",
    "FAILED": "the instance has failed; repair or restore it first",
    "STORAGE FULL": "the instance's storage is full; scale up its storage first",
}
"""Statuses that need a person; the value says what to do about it."""


def require_active(instance: Instance) -> None:
    """Return if a backup can be made of ``instance`` now; else raise why not."""
    status = instance.status.strip().upper()
    if status in READY:
        return
    if status in PASSING:
        raise InstanceBusyError(
            f"instance {instance.id} is {instance.status}, not ACTIVE: it is busy with a "
            "backup or another operation; try again later",
            instance_id=instance.id,
            instance_status=instance.status,
        )
    advice = STOPPED.get(status, "an unknown status; look at the instance before retrying")
    raise InstanceNotActiveError(
        f"instance {instance.id} is {instance.status}, not ACTIVE: {advice}",
        instance_id=instance.id,
        instance_status=instance.status,
    )
