"""Inbound events: one module per sender, each verifying and parsing its own wire format.

Adding a source = one module here, one sample in ``events/samples/``, one test file, and its
``Sender`` in ``events/senders.py`` and the lists below (most specific first; ``generic`` is the
fallback and stays last). A source's module is imported on the first delivery that matches it
(``senders.py`` says why), so nothing here imports one.

Two entry points serve them:

- ``WEBHOOK`` (internet-facing): every source proves its sender (signature or token).
- ``EVENT`` (queue deliveries): the platform (Knative/Eventarc, Pub/Sub push, FunctionGraph)
  has authenticated the sender. A FunctionGraph APIG event wraps a whole HTTP request, which
  is served like a request to ``webhook``, verified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from config import Settings
from errors import InvalidEventError
from events.base import Delivery, Headers, json_value
from events.senders import (
    APIG,
    CLOUDEVENTS,
    FUNCTIONGRAPH,
    GENERIC,
    GITHUB,
    GITLAB,
    PUBSUB,
    SMN,
    Sender,
)

__all__ = ["EVENT", "GENERIC", "SOURCES", "WEBHOOK", "Entry", "Sender", "receive"]


class _Recognisable(Protocol):
    @property
    def LABEL(self) -> str: ...

    def matches(self, headers: Headers, body: bytes) -> bool: ...


@dataclass(frozen=True)
class Entry:
    """What one entry point accepts, and whether its requests are queue deliveries."""

    name: str
    sources: tuple[Sender, ...]
    verified_by_platform: bool
    queue: bool
    envelopes: tuple[Sender, ...] = ()
    #: What the other entry point takes, to point a misdirected request there.
    elsewhere: tuple[_Recognisable, ...] = ()
    other: str = ""

    def envelope(self, headers: Headers, body: bytes) -> Sender | None:
        return next((e for e in self.envelopes if e.matches(headers, body)), None)

    def detect(self, headers: Headers, body: bytes) -> Sender:
        for source in self.sources:
            if source.matches(headers, body):
                if source is GENERIC:  # the fallback: first, is it meant for the other one?
                    self._misdirected(headers, body)
                return source
        self._misdirected(headers, body)
        labels = [e.LABEL for e in self.envelopes] + [s.LABEL for s in self.sources]
        accepted = "; ".join(labels)
        raise InvalidEventError(f"the request matches no source accepted here: {accepted}")

    def _misdirected(self, headers: Headers, body: bytes) -> None:
        for source in self.elsewhere:
            if source.matches(headers, body):
                kind = "a queue delivery" if self.other == "event" else "a webhook delivery"
                raise InvalidEventError(
                    f"the request matches no source accepted here: this is {kind} "
                    f"({source.LABEL}); send it to the `{self.other}` entry point"
                )


class _GenericShape:
    """The generic event by its shape (a JSON object with ``event``), not by its headers:
    on ``event``, where any JSON would match the generic source's own test."""

    LABEL = GENERIC.LABEL

    @staticmethod
    def matches(headers: Headers, body: bytes) -> bool:
        document = json_value(body)  # never raises (deep nesting, huge numbers: not a match)
        return isinstance(document, dict) and "event" in document


WEBHOOK = Entry(
    name="webhook",
    sources=(GITHUB, GITLAB, SMN, CLOUDEVENTS, GENERIC),
    verified_by_platform=False,
    queue=False,
    elsewhere=(APIG, PUBSUB, FUNCTIONGRAPH),
    other="event",
)
EVENT = Entry(
    name="event",
    sources=(CLOUDEVENTS, PUBSUB, FUNCTIONGRAPH),
    verified_by_platform=True,
    queue=True,
    envelopes=(APIG,),
    elsewhere=(GITHUB, GITLAB, SMN, _GenericShape()),
    other="webhook",
)

SOURCES: tuple[Sender, ...] = tuple(dict.fromkeys(WEBHOOK.sources + EVENT.sources))
"""Every source of every entry point (for tools that cover them all, such as the fuzzer)."""


def receive(
    entry: Entry,
    headers: Headers,
    body: bytes,
    settings: Settings,
    source: Sender | None = None,
    *,
    certificates: Callable[[str], bytes] | None = None,
) -> Delivery:
    """Detect the sender (unless given), verify it (unless the platform has), parse its delivery.

    ``certificates`` is the injected I/O for sources that verify against a certificate their
    sender names (``Sender.needs_certificates``: SMN); the sources never fetch anything.
    """
    source = source or entry.detect(headers, body)
    if not entry.verified_by_platform:
        source.verify(headers, body, settings, certificates)
    return source.parse(headers, body, settings)
