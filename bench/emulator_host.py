"""The emulator as the benchmark needs it: latency per API call, counted connections, timings.

Runs in its own process (``python -m bench.emulator_host``) so that its CPU time never shares
a GIL with the load generator. It wraps the project's emulator from the outside, without
changing it:

- three listeners over one ``App`` (one state): IAM, the TaurusDB API and a control port, so
  that connections are counted per API host, and the benchmark's own control traffic on
  neither;
- ``--latency-ms``: a sleep before every IAM and TaurusDB call (never the control ones);
- each API request's time inside the server (from its request line to its last byte
  written) is recorded with ``time.monotonic()`` (one clock for all processes on Linux), so
  the load generator can subtract the emulator's own time from each event's latency;
- the emulator keeps every backup and job, and looks at all of them on every call; so that
  its cost per call stays flat over 10,000 events, completed backups and their jobs are
  forgotten every ``PRUNE_EVERY`` calls (through the state's internals: a bench-only hack;
  if they change, pruning stops and the emulator merely slows down as it fills);
- ``--seed-backups N``: the first instance starts with a history of N COMPLETED manual
  backups (``seed_history``): the newest ``IN_WINDOW`` of them made in the last ten minutes
  (inside any trigger's look-up window), the rest older than the window, spread over a year;
  pruning spares them;
- AK/SK: the emulator checks only ``X-Auth-Token``. A request signed with the bench's access
  key (``SDK-HMAC-SHA256``, as the official SDK and the function's ``AkSkAuth`` sign) is
  verified here (a lean canonicalisation of its own, so that checking costs the emulator
  little CPU, which the functions under test share) and then handed on with a valid token.
  A wrong signature is handed on without one, so the emulator refuses it (401).

Control endpoints on the control port: ``GET /_bench/stats`` and ``POST /_bench/reset``.
It prints one JSON line with the three URLs, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import signal
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from clients.auth import SIGNING_ALGORITHM, sign_string, string_to_sign
from emulator import Emulator, EmulatorConfig
from emulator.server import EmulatorServer, _Handler
from emulator.state import COMPLETED, FAILED
from emulator.wire import Request, Response

ACCESS_KEY = "BENCHACCESSKEY000001"
SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmn"

_AUTH_HEADER = re.compile(
    re.escape(SIGNING_ALGORITHM) + r" Access=([^,\s]+), SignedHeaders=([^,\s]+), Signature=(\w+)"
)
_PROJECT_IN_PATH = re.compile(r"^/v3/[0-9a-f]{32}/")
PRUNE_EVERY = 200
FINISHED = (COMPLETED, FAILED)
SEED_PREFIX = "seeded-history"
IN_WINDOW = 50


def bench_instances(count: int) -> tuple[str, ...]:
    """Instance ids of the documented shape; the events spread over them."""
    return tuple(f"{0xBE7C0000 + i:032x}in07" for i in range(count))


class Recorder:
    """Counters and per-request server times, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.connections: dict[str, int] = {"iam": 0, "api": 0}
            self.requests: dict[str, int] = {}
            self.timings: list[tuple[float, float]] = []
            self.aksk: dict[str, int] = {"verified": 0, "refused": 0}

    def connection(self, listener: str) -> None:
        with self._lock:
            self.connections[listener] = self.connections.get(listener, 0) + 1

    def request(self, key: str, started: float, seconds: float) -> None:
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            self.timings.append((started, seconds))

    def signed(self, ok: bool) -> None:
        with self._lock:
            self.aksk["verified" if ok else "refused"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connections": dict(self.connections),
                "requests": dict(self.requests),
                "timings": list(self.timings),
                "aksk": dict(self.aksk),
            }


def _route_key(method: str, path: str) -> str:
    return f"{method} {_PROJECT_IN_PATH.sub('/v3/{project_id}/', path)}"


class _TimedHandler(_Handler):
    """Records each API request's time from its request line to its last byte.

    ``disable_nagle_algorithm``: ``http.server`` writes the head and the body of a response
    in two ``send()`` calls; with Nagle's algorithm on, the body waits for the client's
    (delayed, ~40 ms) ACK of the head. Real API gateways do not stall like that.
    """

    disable_nagle_algorithm = True
    _started: float | None = None

    def parse_request(self) -> bool:
        self._started = time.monotonic()
        return super().parse_request()

    def handle_one_request(self) -> None:
        self._started = None
        super().handle_one_request()
        started = self._started
        path = getattr(self, "path", "")
        if started is not None and path.startswith("/v3/"):
            server = self.server
            assert isinstance(server, CountingServer)
            elapsed = time.monotonic() - started
            server.recorder.request(_route_key(self.command, path.split("?")[0]), started, elapsed)


class CountingServer(EmulatorServer):
    """The emulator's HTTP server, counting every connection it accepts."""

    def __init__(
        self, address: tuple[str, int], app: Any, recorder: Recorder, listener: str | None
    ) -> None:
        super().__init__(address, app)
        self.RequestHandlerClass = _TimedHandler
        self.recorder = recorder
        self.listener = listener

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.listener is not None:
            self.recorder.connection(self.listener)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A function process stopped with SIGKILL resets its kept-alive connections: no
        traceback for that; anything else is reported as ``socketserver`` does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class BenchApp:
    """Wraps ``App.handle``: control endpoints, injected latency, AK/SK to token."""

    def __init__(self, emulator: Emulator, recorder: Recorder, latency: float) -> None:
        self._emulator = emulator
        self._inner = emulator.app.handle
        self._recorder = recorder
        self._latency = latency
        project = emulator.config.project_id
        self._token = emulator.state.issue_token(project).value
        self._calls = itertools.count(1)

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_bench/"):
            return self._control(request)
        if request.path.startswith("/v3/"):
            if next(self._calls) % PRUNE_EVERY == 0:
                self._prune()
            if self._latency:
                time.sleep(self._latency)
            if request.header("Authorization") and not request.header("X-Auth-Token"):
                request = self._from_aksk(request)
        return self._inner(request)

    def _prune(self) -> None:
        """Forget completed backups and their jobs (see the module's docstring)."""
        state: Any = self._emulator.state
        try:
            lock, backups, jobs = state._lock, state._backups, state._jobs
        except AttributeError:
            return
        with lock:
            done = [
                backup
                for backup in backups.values()
                if backup.status in FINISHED and not backup.name.startswith(SEED_PREFIX)
            ]
            for backup in done:
                del backups[backup.id]
                if backup.job_id:
                    jobs.pop(backup.job_id, None)
        self._emulator.log.clear()

    def _control(self, request: Request) -> Response:
        if request.path == "/_bench/stats" and request.method == "GET":
            return Response(200, self._recorder.snapshot())
        if request.path == "/_bench/reset" and request.method == "POST":
            self._recorder.reset()
            self._emulator.log.clear()
            return Response(200, {"reset": True})
        return Response(404, {"error": "no such bench endpoint"})

    def _from_aksk(self, request: Request) -> Request:
        """Verify an AK/SK signature; if it holds, let the request through with a token."""
        found = _AUTH_HEADER.fullmatch(request.header("Authorization") or "")
        ok = found is not None and found.group(1) == ACCESS_KEY
        if found is not None and ok:
            canonical = _canonical(request, found.group(2).split(";"))
            to_sign = string_to_sign(request.header("X-Sdk-Date") or "", canonical)
            ok = sign_string(SECRET_KEY, to_sign) == found.group(3)
        self._recorder.signed(ok)
        if not ok:
            return request
        # The emulator verifies AK/SK itself (with its own keys): hand it the token instead.
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        return replace(request, headers={**headers, "x-auth-token": self._token})


def _canonical(request: Request, signed: list[str]) -> str:
    """The canonical request of SDK-HMAC-SHA256, rebuilt from what arrived."""
    path = "/".join(quote(segment, safe="~") for segment in request.path.split("/"))
    query = "&".join(
        f"{quote(key, safe='~')}={quote(value, safe='~')}"
        for key, value in sorted(request.query.items())
    )
    headers = "".join(f"{name}:{request.headers.get(name, '').strip()}\n" for name in signed)
    payload = request.header("X-Sdk-Content-Sha256") or hashlib.sha256(request.body).hexdigest()
    return "\n".join(
        [
            request.method,
            path if path.endswith("/") else path + "/",
            query,
            headers,
            ";".join(signed),
            payload,
        ]
    )


def seed_history(emulator: Emulator, instance_id: str, count: int) -> int:
    """``count`` older manual backups on the instance: a team's history (module docstring).

    The newest ``IN_WINDOW`` were made in the last ten minutes: inside any trigger's look-up
    window. The rest are older than the longest window a trigger can have (the default
    ``IDEMPOTENCY_WINDOW_DAYS``, 7, plus the clock skew allowance), spread from 8 days back
    over the year before: more history, the same backups in the window. (How many backups
    fall into the window is a matter of how often an instance is backed up, not of how long
    it has been: a fresh event reads ceil(in the window / 100) pages.)
    """
    now = datetime.now(tz=UTC)
    recent = min(count, IN_WINDOW)
    older = count - recent
    state = emulator.state
    if recent:
        state.add_backup(
            instance_id,
            backup_type="manual",
            name=f"{SEED_PREFIX}-recent",
            begin_time=now - timedelta(seconds=30),
            count=recent,
            spacing_seconds=10.0,
        )
    if older:
        state.add_backup(
            instance_id,
            backup_type="manual",
            name=f"{SEED_PREFIX}-older",
            begin_time=now - timedelta(days=8),
            count=older,
            spacing_seconds=timedelta(days=365).total_seconds() / older,
        )
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator_host", description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--seed-backups", type=int, default=0)
    args = parser.parse_args(argv)

    instances = bench_instances(args.instances)
    emulator = Emulator(EmulatorConfig(port=0, backup_seconds=0.0, instances=instances))
    if args.seed_backups:
        seed_history(emulator, instances[0], args.seed_backups)
    recorder = Recorder()
    app = BenchApp(emulator, recorder, args.latency_ms / 1000)
    emulator.app.handle = app.handle  # type: ignore[method-assign]
    servers = {
        name: CountingServer(("127.0.0.1", 0), emulator.app, recorder, listener)
        for name, listener in (("iam", "iam"), ("api", "api"), ("control", None))
    }
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        for server in servers.values()
    ]
    for thread in threads:
        thread.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    urls = {name: server.url for name, server in servers.items()}
    print(json.dumps({**urls, "instances": list(instances)}), flush=True)
    while not stop.wait(0.2):
        pass
    for server in servers.values():
        server.shutdown()
        server.server_close()
        server.close_connections()
    return 0


if __name__ == "__main__":
    sys.exit(main())
