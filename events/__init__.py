"""Inbound events: one module per sender, each verifying and parsing its own wire format.

Adding a source = one module here, one sample in ``events/samples/``, one test file, and its
name in ``SOURCES`` (most specific first; ``generic`` is the fallback and stays last).
"""

from __future__ import annotations

from events import generic
from events.base import EventSource, Headers

__all__ = ["SOURCES", "detect"]

SOURCES: tuple[EventSource, ...] = (generic,)


def detect(headers: Headers) -> EventSource:
    """The first source whose headers match; ``generic`` takes whatever is left."""
    for source in SOURCES:
        if source.matches(headers):
            return source
    return generic
