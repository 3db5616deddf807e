"""Slow clients against the function, on 127.0.0.1 only: does it still answer, and when does it
close the slow connections?

    python -m tools.slowloris                       # both launchers, 8 and 64 connections
    python -m tools.slowloris --launcher image --connections 64 --hold 5

For each launcher (``image``: ``python -m server`` as the Dockerfile and ``bootstrap`` start it;
``functions-framework``: ``functions-framework --target=webhook``) the tool starts the emulator
and the function with ``THREADS=8`` (as template.yaml), opens N connections that stop inside
their headers and N that stop inside their body (and, with ``--drip``, N that send one header
byte a second forever), and then, for ``--hold`` seconds, times ``GET /healthz`` and a real
signed event (a backup on the emulator) about twice a second. It watches every slow
connection until the server closes it (or answers it, e.g. ``408``), for ``--bound`` seconds
at most, and prints one line per case. Bounded in count and time; it stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from tools.serve import Launcher, function_server

__all__ = ["Result", "attack", "event_probe", "main", "stack"]

Stall = Literal["headers", "body", "drip"]
MAX_CONNECTIONS = 256  # a bound on what one run may open
PROBE_TIMEOUT = 5.0

_HEAD = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"webhook-id: msg_slow\r\n"
)


@dataclass
class Result:
    """What the probes saw while the slow connections were held, and when each was closed."""

    stall: tuple[Stall, ...]
    connections: int
    healthz: list[float | None] = field(default_factory=list)  # seconds; None: no answer
    event: list[float | None] = field(default_factory=list)
    closed_after: list[float | None] = field(default_factory=list)  # None: open at the bound
    answers: list[bytes] = field(default_factory=list)  # first bytes a slow connection got

    def worst(self, probes: list[float | None]) -> float:
        return max((p if p is not None else float("inf")) for p in probes) if probes else 0.0

    def line(self) -> str:
        def show(probes: list[float | None]) -> str:
            if not probes:
                return "-"
            answered = [p for p in probes if p is not None]
            failed = len(probes) - len(answered)
            median = statistics.median(answered) * 1000 if answered else float("nan")
            worst = self.worst(probes)
            text = f"median {median:.0f} ms, max {worst * 1000:.0f} ms"
            return text + (
                f", {failed}/{len(probes)} unanswered in {PROBE_TIMEOUT:g} s" * bool(failed)
            )

        closed = [c for c in self.closed_after if c is not None]
        still = len(self.closed_after) - len(closed)
        closing = (
            f"{len(closed)}/{len(self.closed_after)} closed, last after {max(closed):.1f} s"
            if closed
            else f"0/{len(self.closed_after)} closed"
        )
        if still:
            closing += f", {still} still open at the bound"
        return (
            f"{self.connections} x {'+'.join(self.stall)}: healthz {show(self.healthz)}; "
            f"event {show(self.event)}; slow connections {closing}"
        )


def _open(url: str, stall: Stall) -> socket.socket:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if not host.startswith("127.") and host != "localhost":
        raise SystemExit("slowloris only targets 127.0.0.1 (loopback)")
    sock = socket.create_connection((host, parts.port or 80), timeout=5)
    if stall == "body":
        sock.sendall(_HEAD + b"Content-Length: 4096\r\n\r\n" + b'{"id": "slow')
    else:
        sock.sendall(_HEAD + b"X-Slow: a")
    sock.setblocking(False)
    return sock


def attack(
    url: str,
    *,
    connections: int,
    stalls: Sequence[Stall] = ("headers", "body"),
    hold: float = 5.0,
    bound: float = 30.0,
    probe: Callable[[], float | None] | None = None,
) -> Result:
    """Hold ``connections`` slow connections per kind in ``stalls`` and probe ``url`` meanwhile."""
    total = connections * len(stalls)
    if not 0 < total <= MAX_CONNECTIONS:
        raise ValueError(f"between 1 and {MAX_CONNECTIONS} slow connections in all")
    result = Result(tuple(stalls), connections)
    slow: list[tuple[socket.socket, Stall, float]] = []
    try:
        for stall in stalls:
            for _ in range(connections):
                slow.append((_open(url, stall), stall, time.monotonic()))
        result.closed_after = [None] * len(slow)
        result.answers = [b""] * len(slow)
        watcher = threading.Thread(target=_watch, args=(slow, result, bound), daemon=True)
        watcher.start()
        time.sleep(0.5)  # the stalls are in place (a thread-per-request server has taken them)
        _probe(url, result, hold, probe)
        watcher.join(bound + 5)
    finally:
        for sock, _, _ in slow:
            sock.close()
    return result


def _watch(slow: list[tuple[socket.socket, Stall, float]], result: Result, bound: float) -> None:
    """Until each slow connection is closed by the server (or the bound): drip, read, note."""
    started = min((t for _, _, t in slow), default=time.monotonic())
    next_drip = time.monotonic() + 1.0
    while time.monotonic() - started < bound:
        open_ = [i for i, closed in enumerate(result.closed_after) if closed is None]
        if not open_:
            return
        readable = _readable([slow[i][0] for i in open_], 0.1)
        now = time.monotonic()
        for i in open_:
            sock, stall, opened = slow[i]
            gone = False
            if sock in readable:
                try:
                    data = sock.recv(4096)
                    result.answers[i] += data[:64]
                    gone = not data or data.startswith(b"HTTP/")
                except OSError:
                    gone = True
            elif stall == "drip" and now >= next_drip:
                try:
                    sock.send(b"a")
                except OSError:
                    gone = True
            if gone:
                result.closed_after[i] = now - opened
        if now >= next_drip:
            next_drip = now + 1.0


def _probe(url: str, result: Result, hold: float, probe: Callable[[], float | None] | None) -> None:
    end = time.monotonic() + hold
    with httpx.Client(timeout=PROBE_TIMEOUT) as client:
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                client.get(url + "healthz", headers={"Connection": "close"}).raise_for_status()
                result.healthz.append(time.monotonic() - started)
            except httpx.HTTPError:
                result.healthz.append(None)
            if probe is not None:
                result.event.append(probe())
            time.sleep(0.4)  # a backup on the emulator ends before the next event


def event_probe(url: str, webhook_secret: str, instance_id: str) -> Callable[[], float | None]:
    """A real signed pre-deploy event each call (a new deploy id): seconds to its 2xx, or None."""
    counter = iter(range(10**6))

    def send() -> float | None:
        body = json.dumps(
            {"event": "pre-deploy", "id": f"slow-{next(counter)}", "instance_id": instance_id}
        )
        now = datetime.now(tz=UTC)
        message_id = "msg_" + secrets.token_hex(6)
        headers = {
            "Content-Type": "application/json",
            "Connection": "close",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(webhook_secret).sign(message_id, now, body),
        }
        started = time.monotonic()
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=PROBE_TIMEOUT)
        except httpx.HTTPError:
            return None
        return time.monotonic() - started if response.is_success else None

    return send


INSTANCE = "07033b125fd94a8a96896f8bcfee6ddain07"  # one of the emulator's seeded instances


@contextlib.contextmanager
def stack(launcher: Launcher) -> Iterator[tuple[str, Callable[[], float | None]]]:
    """The emulator and the function (``THREADS=8``): its URL and an event probe."""
    from emulator import Emulator, EmulatorConfig

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    config = EmulatorConfig(port=0, backup_seconds=0.2)
    with Emulator(config) as emu:
        env = {
            **os.environ,
            **config.function_env(emu.url),
            "WEBHOOK_SECRET": secret,
            "THREADS": "8",
            "LOG_LEVEL": "WARNING",
        }
        with function_server(env, launcher=launcher) as url:
            yield url, event_probe(url, secret, INSTANCE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slowloris", description=__doc__)
    parser.add_argument(
        "--launcher", choices=["image", "functions-framework"], action="append", default=None
    )
    parser.add_argument("--connections", type=int, action="append", default=None)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds of probing (5)")
    parser.add_argument("--bound", type=float, default=30.0, help="seconds to watch (30)")
    parser.add_argument("--drip", action="store_true", help="add N connections that drip")
    args = parser.parse_args(argv)
    stalls: tuple[Stall, ...] = ("headers", "body", "drip") if args.drip else ("headers", "body")
    for launcher in args.launcher or ["functions-framework", "image"]:
        for count in args.connections or [8, 64]:
            with stack(launcher) as (url, probe):
                result = attack(
                    url,
                    connections=count,
                    stalls=stalls,
                    hold=args.hold,
                    bound=args.bound,
                    probe=probe,
                )
            print(f"{launcher}: {result.line()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _readable(socks: list[socket.socket], timeout: float) -> set[object]:
    """The sockets with data (or EOF) within ``timeout``; epoll/poll, not select(): a test
    process may already hold more than FD_SETSIZE (1024) descriptors."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return {key.fileobj for key, _ in selector.select(timeout)}
