"""Handshakes a sender waits for: SMN's subscription confirmation, a GET of its ``subscribe_url``.

The source (``events.smn``) has verified the message and checked the URL's host; visiting it is
I/O, so it happens here, through the client the caller gives (``clients.smn.SmnClient``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from errors import ConfigurationError, InvalidEventError, PredeployError
from models import Handshake, Note

__all__ = ["confirm"]

_log = logging.getLogger("predeploy.smn")


def confirm(handshake: Handshake, visit: Callable[[str], None] | None) -> Note | PredeployError:
    """The handshake's note once ``visit(url)`` went through, else why it did not.

    ``visit`` raises ``LookupError`` when the sender refused the confirmation (a 4xx: an
    expired or used token), ``PredeployError`` when it could not be reached (a retry helps).
    """
    if visit is None:
        return ConfigurationError("no SMN client is set up to confirm the subscription")
    try:
        visit(handshake.url)
    except LookupError as exc:
        return InvalidEventError(f"SMN did not take the confirmation: {exc}")
    except PredeployError as exc:
        return exc
    _log.info(
        "SMN subscription confirmed",
        extra={"fields": {"outcome": handshake.status, "topic_urn": handshake.topic}},
    )
    return Note(handshake.status, handshake.message)
