"""Deterministic backup names and descriptions, derived from the trigger.

The same trigger always yields the same name, which is what makes a redelivery recognisable
(the API is the only state we keep). Names carry the ``predeploy-`` prefix so that this
function's backups can be told apart from every other manual backup.
"""

from __future__ import annotations

import hashlib
import re

from models import Trigger

__all__ = ["NAME_PREFIX", "backup_name_for", "description_for"]

NAME_PREFIX = "predeploy-"
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_UNSAFE_IN_DESCRIPTION = re.compile(r"[^A-Za-z0-9_.:/@ -]+")


def backup_name_for(trigger: Trigger) -> str:
    """``predeploy-<readable part of the trigger id>-<hash of the key>``, 4 to 64 characters.

    The hash keeps names of different triggers apart even when their readable parts agree
    after the unsafe characters are dropped or cut.
    """
    digest = hashlib.sha256(trigger.key.encode()).hexdigest()[:12]
    readable = _UNSAFE_IN_NAME.sub("-", trigger.trigger_id).strip("-_")[:32].strip("-_")
    if readable and not readable.startswith("sha256"):
        return f"{NAME_PREFIX}{readable}-{digest}"
    return f"{NAME_PREFIX}{digest}"


def description_for(trigger: Trigger) -> str:
    """A description that obeys the API's rules: no ``> ! < " & ' =``, no line breaks."""
    readable = _UNSAFE_IN_DESCRIPTION.sub("_", trigger.trigger_id)[:180]
    return f"Pre-deploy backup by predeploy-backup, trigger {readable} ({trigger.source})"
