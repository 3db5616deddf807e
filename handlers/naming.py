"""Deterministic backup names and descriptions, derived from the trigger.

The same trigger always yields the same name and the same marker, which is what makes a
redelivery recognisable (the API is the only state we keep). Names carry the ``predeploy-``
prefix so this function's backups can be told apart from every other manual backup. The
marker ``[pd:<16 hex>]`` at the end of the description ties a backup to one trigger even when
the sender chose the name itself (two deploys that both say ``name: backup-1`` are still two
triggers, and must get two backups).
"""

from __future__ import annotations

import hashlib
import re

from models import DESCRIPTION_MAX, Trigger

__all__ = ["NAME_PREFIX", "backup_name_for", "description_for", "is_own", "marker_for"]

NAME_PREFIX = "predeploy-"
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_UNSAFE_IN_DESCRIPTION = re.compile(r"[^A-Za-z0-9_.:/@ -]+")
_MARKER = re.compile(r"\[pd:[0-9a-f]{16}\]\Z")


def _digest(trigger: Trigger) -> str:
    return hashlib.sha256(trigger.key.encode()).hexdigest()


def backup_name_for(trigger: Trigger) -> str:
    """``predeploy-<readable part of the trigger id>-<hash of the key>``, 4 to 64 characters.

    The hash keeps names of different triggers apart even when their readable parts agree
    after the unsafe characters are dropped or cut.
    """
    digest = _digest(trigger)[:12]
    readable = _UNSAFE_IN_NAME.sub("-", trigger.trigger_id).strip("-_")[:32].strip("-_")
    if readable and not readable.startswith("sha256"):
        return f"{NAME_PREFIX}{readable}-{digest}"
    return f"{NAME_PREFIX}{digest}"


def marker_for(trigger: Trigger) -> str:
    """``[pd:<16 hex>]``: which trigger a backup belongs to, kept in its description."""
    return f"[pd:{_digest(trigger)[:16]}]"


def description_for(trigger: Trigger) -> str:
    """The sender's description (cut to fit) or a derived one, followed by the marker.

    Obeys the API's rules: at most 256 characters, no ``> ! < " & ' =``, no line breaks.
    """
    marker = marker_for(trigger)
    room = DESCRIPTION_MAX - len(marker) - 1
    if trigger.description is not None:
        text = trigger.description[:room].rstrip()
    else:
        readable = _UNSAFE_IN_DESCRIPTION.sub("_", trigger.trigger_id)
        text = f"Pre-deploy backup, {trigger.source} trigger {readable}"[:room].rstrip()
    return f"{text} {marker}" if text else marker


def is_own(name: str, description: str) -> bool:
    """Whether a backup was made by this function: its name prefix and a marker at the end.

    Both are required, so a manual backup that someone merely named ``predeploy-…`` is not
    taken for ours (retention deletes only ours).
    """
    return name.startswith(NAME_PREFIX) and _MARKER.search(description) is not None
