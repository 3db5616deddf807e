"""Load generation: signed pre-deploy events over keep-alive connections, timed per event.

Plain ``http.client`` keeps the client's own cost per event small and the same for every
function under test. Each event has a fresh id (so a fresh backup name) and the events
rotate over the emulator's instances.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from standardwebhooks import Webhook


class Source(Protocol):
    """Where a phase's events come from: one signed event (body, headers) per call."""

    def next(self) -> tuple[bytes, dict[str, str]]: ...


@dataclass
class Events:
    """Signed generic pre-deploy events, each with its own id; thread-safe.

    ``keep``: remember what was sent, so that ``redeliveries()`` can send it all again.
    """

    secret: str
    instances: list[str]
    prefix: str
    keep: bool = False
    sent: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._webhook = Webhook(self.secret)

    def redeliveries(self) -> Replay:
        """The events sent so far, once more, byte for byte (a sender's redelivery)."""
        with self._lock:
            return Replay(list(self.sent))

    def next(self) -> tuple[bytes, dict[str, str]]:
        made = self._make()
        if self.keep:
            with self._lock:
                self.sent.append(made)
        return made

    def _make(self) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            number = next(self._counter)
        event_id = f"{self.prefix}-{number}"
        body = json.dumps(
            {
                "event": "pre-deploy",
                "id": event_id,
                "instance_id": self.instances[number % len(self.instances)],
            }
        )
        now = datetime.now(tz=UTC)
        message_id = f"msg_{event_id}"
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, now, body),
        }
        return body.encode(), headers


@dataclass
class Replay:
    """Events sent before, in order, once each; then it repeats from the start."""

    events: list[tuple[bytes, dict[str, str]]]
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            return self.events[next(self._counter) % len(self.events)]


@dataclass(frozen=True)
class Sample:
    started: float
    ended: float
    status: int

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class PhaseResult:
    samples: list[Sample]
    wall_seconds: float

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status in (200, 202)]

    @property
    def failures(self) -> int:
        return len(self.samples) - len(self.ok)

    @property
    def rate(self) -> float:
        return len(self.ok) / self.wall_seconds if self.wall_seconds > 0 else 0.0


def post(connection: http.client.HTTPConnection, events: Source) -> Sample:
    body, headers = events.next()
    started = time.monotonic()
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        connection.close()
        status = 0
    return Sample(started, time.monotonic(), status)


def run_phase(
    port: int, events: Source, *, clients: int, count: int, max_seconds: float
) -> PhaseResult:
    """``count`` events from ``clients`` concurrent keep-alive clients, or until time is up."""
    claimed = itertools.count()
    samples: list[Sample] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[Sample] = []
        try:
            while next(claimed) < count and time.monotonic() < deadline:
                mine.append(post(connection, events))
        finally:
            connection.close()
            with lock:
                samples.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return PhaseResult(samples, time.monotonic() - started)


class Exited(RuntimeError):
    """The function's process ended before it accepted a connection (e.g. its port was taken
    between ``free_port`` and its bind, by another process of a busy machine)."""


def first_answer(
    port: int, events: Source, deadline: float, alive: Callable[[], bool] = lambda: True
) -> tuple[float, int]:
    """Connect as soon as the port accepts, send one event; (monotonic answer time, status)."""
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            break
        except ConnectionRefusedError:
            if not alive():
                raise Exited("the function's process ended before it opened its port") from None
            if time.monotonic() > deadline:
                raise TimeoutError("the function did not open its port in time") from None
            time.sleep(0.003)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.sock = sock
    body, headers = events.next()
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return time.monotonic(), response.status
    finally:
        connection.close()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return ordered[rank]
