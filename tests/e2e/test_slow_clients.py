"""Slow clients and early answers against the function as the image and ``bootstrap`` start it
(``server.py``: waitress in front of the functions-framework app), ``THREADS=8`` as in
template.yaml, the emulator behind it.

- 8 and 64 connections that stop inside their headers, inside their body, or drip a byte a
  second: ``/healthz`` and a real signed event still answer within 1 s, and the server closes
  each slow connection within ``READ_SECONDS`` (+ its once-a-second check and some slack).
- An oversized body is refused before it is read with ``Connection: close``; a pooled client
  (httpx keep-alive) that goes on with 100 normal requests gets 100 clean answers.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from emulator import Emulator
from helpers import (
    INSTANCE,
    ROOT,
    WEBHOOK_SECRET,
    backups_on,
    event,
    event_requests,
    function_env,
    sign,
)
from server import READ_SECONDS
from tools.serve import free_port, stop
from tools.slowloris import attack, event_probe

CLOSE_BOUND = READ_SECONDS + 3.0  # the once-a-second check, and a busy machine


def start(argv: list[str], env: dict[str, str], url: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        argv, cwd="/", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited: {process.stderr.read() if process.stderr else ''}")
        try:
            httpx.get(url + "healthz", timeout=1)
            return process
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


@contextlib.contextmanager
def launch(path: str, emu: Emulator, **settings: str) -> Iterator[str]:
    """The function started as the Dockerfile's CMD (``image``) or FunctionGraph's
    ``bootstrap`` would start it, THREADS=8: its URL."""
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        **function_env(emu.url),
        "THREADS": "8",
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    target = env.pop("FUNCTION_TARGET", "webhook")
    if path == "image":
        argv = [sys.executable, str(ROOT / "server.py")]  # Dockerfile: python /app/server.py
        env.update(FUNCTION_TARGET=target, PORT=str(port), HOST="127.0.0.1")
    else:
        argv = [str(ROOT / "bootstrap")]
        env.update(RUNTIME_CODE_ROOT=str(ROOT), PREDEPLOY_BOOTSTRAP_PORT=str(port))
    url = f"http://127.0.0.1:{port}/"
    process = start(argv, env, url)
    try:
        yield url
    finally:
        stop(process)


def probe_for(url: str) -> Callable[[], float | None]:
    return event_probe(url, WEBHOOK_SECRET, INSTANCE)


@pytest.mark.parametrize(("path", "connections"), [("image", 8), ("image", 64), ("bootstrap", 8)])
def test_slow_connections_do_not_stop_healthz_or_events(
    emu: Emulator, path: str, connections: int
) -> None:
    with launch(path, emu) as url:
        result = attack(
            url,
            connections=connections,
            stalls=("headers", "body", "drip"),
            hold=2.0,
            bound=CLOSE_BOUND + 2,
            probe=probe_for(url),
        )
    assert result.healthz and all(t is not None and t < 1.0 for t in result.healthz), result.line()
    assert result.event and all(t is not None and t < 1.0 for t in result.event), result.line()
    assert len(backups_on(emu)) == len(result.event)  # each probe was a real event: a backup
    assert len(result.closed_after) == 3 * connections
    assert all(c is not None and c <= CLOSE_BOUND for c in result.closed_after), result.line()
    # Closed by the time limits, not earlier: a slow but honest client has READ_SECONDS.
    assert min(c for c in result.closed_after if c is not None) >= READ_SECONDS - 1.5
    assert all(answer == b"" for answer in result.answers)  # dropped, nothing half-written


def oversized(limit: int) -> bytes:
    return b'{"pad": "' + b"x" * (limit * 3) + b'"}'


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_body_then_100_requests_on_the_same_pool(emu: Emulator, chunked: bool) -> None:
    """The server refuses the body before reading it, says ``Connection: close`` and closes;
    the pool opens a new connection and every later request gets a clean answer."""
    limit = 1024 * 1024  # MAX_BODY_BYTES' default
    big = oversized(limit)
    content = iter([big[i : i + 65536] for i in range(0, len(big), 65536)]) if chunked else big
    body = event()
    with launch("image", emu) as url, httpx.Client(timeout=10) as client:
        refused = client.post(url, content=content, headers={"Content-Type": "application/json"})
        assert refused.status_code == 413
        assert refused.headers["connection"] == "close"
        assert refused.json() == {
            "error": "payload_too_large",
            "message": f"the body is larger than MAX_BODY_BYTES ({limit} bytes)",
        }
        statuses = []
        for _ in range(100):
            statuses.append(client.post(url, content=body, headers=sign(body)).status_code)
    assert statuses == [202] + [200] * 99  # one backup, then the same one each time
    assert len(backups_on(emu)) == 1


def test_body_limit_is_max_body_bytes_to_the_byte(emu: Emulator) -> None:
    """``MAX_BODY_BYTES`` set: the server's limit is the function's, exact to the byte."""
    body = event()
    exact = body + b" " * (200 - len(body))  # JSON may end in white space
    with launch("image", emu, MAX_BODY_BYTES="200") as url, httpx.Client(timeout=10) as client:
        too_big = client.post(url, content=exact + b" ", headers=sign(exact + b" "))
        assert too_big.status_code == 413
        assert too_big.headers["connection"] == "close"
        assert "MAX_BODY_BYTES (200 bytes)" in too_big.json()["message"]
        accepted = client.post(url, content=exact, headers=sign(exact))
        assert accepted.status_code == 202, accepted.text
    assert len(backups_on(emu)) == 1


# Pub/Sub push without a wrapper: Google's user agent, the attributes as headers (the shape of
# tests/functional/test_sources_pubsub.py, from Google's "Push subscriptions: payload
# unwrapping" page).
PUBSUB_UNWRAPPED = {
    "Content-Type": "application/json",
    "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
    "From": "noreply@google.com",
}


def test_queue_deliveries_over_the_limit_reach_the_function(emu: Emulator) -> None:
    """On ``event`` the function decides about a body over MAX_BODY_BYTES: Pub/Sub push, which
    redelivers every non-2xx answer, gets its acknowledgment; another sender its 413; and the
    pooled connection stays clean."""
    big = event(description="d" * 500)
    with (
        launch("image", emu, FUNCTION_TARGET="event", MAX_BODY_BYTES="200") as url,
        httpx.Client(timeout=10) as client,
    ):
        acknowledged = client.post(url, content=big, headers=PUBSUB_UNWRAPPED)
        assert acknowledged.status_code == 200
        (result,) = acknowledged.json()["results"]
        assert (result["outcome"], result["http_status"], result["retry"]) == ("failed", 413, False)
        assert result["error"] == "payload_too_large"
        refused = client.post(url, content=big, headers={"Content-Type": "application/json"})
        assert refused.status_code == 413
        assert "MAX_BODY_BYTES (200 bytes)" in refused.json()["message"]
        health = [client.get(url + "healthz").status_code for _ in range(20)]
    assert health == [200] * 20
    assert event_requests(emu) == []  # the server's start-up prefetch aside
