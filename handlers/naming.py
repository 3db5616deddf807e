"""Deterministic backup names and descriptions, derived from the trigger.

The same trigger always yields the same name and the same marker, which is what makes a
redelivery recognisable (the API is the only state we keep). Names carry the ``predeploy-``
prefix so this function's backups can be told apart from every other manual backup. The
marker ``[pd:<16 hex>]`` at the end of the description ties a backup to one trigger even when
the sender chose the name itself (two deploys that both say ``name: backup-1`` are still two
triggers, and must get two backups).

Names and descriptions show a readable part of the trigger id, but never a configured
secret: a trigger id that holds one, or any 8 characters of one (its first 32 characters
are enough to leak it), is shown as ``id-withheld`` and the name keeps only the hash.

``identities`` gives the name and marker under which the look-up recognises the trigger's
backup: the current derivation, and the previous release's (``Trigger.previous_key``), so
that an upgrade does not make a second backup for a trigger served before it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from models import DESCRIPTION_MAX, Trigger

__all__ = [
    "NAME_PREFIX",
    "backup_name_for",
    "description_for",
    "identities",
    "is_own",
    "marker_for",
    "shows_secret",
]

NAME_PREFIX = "predeploy-"
WITHHELD = "id-withheld"
_FRAGMENT = 8
"""A trigger id sharing this many consecutive characters with a secret is not shown."""
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_UNSAFE_IN_DESCRIPTION = re.compile(r"[^A-Za-z0-9_.:/@ -]+")
_MARKER = re.compile(r"\[pd:[0-9a-f]{16}\]\Z")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def shows_secret(text: str, secrets: Iterable[str]) -> bool:
    """Whether ``text`` holds a secret, or any ``_FRAGMENT`` consecutive characters of one
    (shorter secrets: the whole secret)."""
    for secret in secrets:
        if not secret:
            continue
        size = min(_FRAGMENT, len(secret))
        if any(text[i : i + size] in secret for i in range(len(text) - size + 1)):
            return True
    return False


def _name(key: str, trigger_id: str) -> str:
    digest = _digest(key)[:12]
    readable = _UNSAFE_IN_NAME.sub("-", trigger_id).strip("-_")[:32].strip("-_")
    if readable and not readable.startswith("sha256"):
        return f"{NAME_PREFIX}{readable}-{digest}"
    return f"{NAME_PREFIX}{digest}"


def backup_name_for(trigger: Trigger, secrets: Iterable[str] = ()) -> str:
    """``predeploy-<readable part of the trigger id>-<hash of the key>``, 4 to 64 characters.

    The hash keeps names of different triggers apart even when their readable parts agree
    after the unsafe characters are dropped or cut. Without a readable part (the id shows a
    secret, or is a hash itself): ``predeploy-<hash>``.
    """
    if shows_secret(trigger.trigger_id, secrets):
        return _name(trigger.key, "")
    return _name(trigger.key, trigger.trigger_id)


def marker_for(trigger: Trigger) -> str:
    """``[pd:<16 hex>]``: which trigger a backup belongs to, kept in its description."""
    return f"[pd:{_digest(trigger.key)[:16]}]"


def identities(trigger: Trigger, secrets: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """``(name, marker)`` pairs a backup of this trigger may carry: the current derivation
    first, then the previous release's, when the trigger knows its previous key.

    The previous release's derivation had no secret check, and keyed with ``previous_key``;
    recognising it for one release lets an upgrade find the backups made before it.
    """
    current = (
        trigger.name if trigger.name is not None else backup_name_for(trigger, secrets),
        marker_for(trigger),
    )
    if trigger.previous_key is None or trigger.previous_key == trigger.key:
        return (current,)
    previous = (
        trigger.name
        if trigger.name is not None
        else _name(trigger.previous_key, trigger.trigger_id),
        f"[pd:{_digest(trigger.previous_key)[:16]}]",
    )
    return (current, previous)


def description_for(trigger: Trigger, secrets: Iterable[str] = ()) -> str:
    """The sender's description (cut to fit) or a derived one, followed by the marker.

    Obeys the API's rules: at most 256 characters, no ``> ! < " & ' =``, no line breaks.
    """
    marker = marker_for(trigger)
    room = DESCRIPTION_MAX - len(marker) - 1
    if trigger.description is not None:
        text = trigger.description[:room].rstrip()
    else:
        shown = WITHHELD if shows_secret(trigger.trigger_id, secrets) else trigger.trigger_id
        readable = _UNSAFE_IN_DESCRIPTION.sub("_", shown)
        text = f"Pre-deploy backup, {trigger.source} trigger {readable}"[:room].rstrip()
    return f"{text} {marker}" if text else marker


def is_own(name: str, description: str) -> bool:
    """Whether a backup was made by this function: its name prefix and a marker at the end.

    Both are required, so a manual backup that someone merely named ``predeploy-…`` is not
    taken for ours (retention deletes only ours).
    """
    return name.startswith(NAME_PREFIX) and _MARKER.search(description) is not None
