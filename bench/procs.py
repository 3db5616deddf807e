"""Processes under test: the emulator host and the functions, started and measured alike.

Each function runs the way it is deployed: ``python server.py --target=webhook --source=…``, the
image's and ``bootstrap``'s launch path (waitress in front of the functions-framework app, one
process, ``THREADS`` threads: 4 per CPU by default, as functions-framework's). Every process
gets its own session so that stopping it stops anything it started, and a clean environment so
that settings
from the caller's shell cannot leak into a measurement.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def clean_env(settings: dict[str, str]) -> dict[str, str]:
    base = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
    return {**base, "PYTHONUNBUFFERED": "1", **settings}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process's own session (and any process it started), then reap."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@dataclass
class EmulatorHost:
    """Handle on a running ``bench.emulator_host`` process."""

    process: subprocess.Popen[str]
    iam_url: str
    api_url: str
    control_url: str
    instances: list[str]

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.control_url}/_bench/stats", timeout=30)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def reset(self) -> None:
        httpx.post(f"{self.control_url}/_bench/reset", timeout=30).raise_for_status()


@contextmanager
def emulator_host(latency_ms: float, seed_backups: int = 0) -> Iterator[EmulatorHost]:
    """``seed_backups``: the first instance starts with that many older manual backups."""
    command = [sys.executable, "-m", "bench.emulator_host", "--latency-ms", str(latency_ms)]
    process = subprocess.Popen(
        [*command, "--seed-backups", str(seed_backups)],
        cwd=ROOT,
        env=clean_env({}),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator host did not start")
        info = json.loads(line)
        yield EmulatorHost(process, info["iam"], info["api"], info["control"], info["instances"])
    finally:
        stop(process)


@dataclass
class Running:
    """A function process listening on ``port``."""

    process: subprocess.Popen[bytes]
    port: int
    spawned: float
    log: Path
    forks: bool = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def worker_pid(self) -> int:
        """The process that serves: the server itself (server.py forks no workers), or its
        only child under a server that does (functions-framework's gunicorn)."""
        if not self.forks:
            return self.process.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = _children(self.process.pid)
            if children:
                return children[0]
            time.sleep(0.01)
        return self.process.pid


def spawn(
    python: Path,
    source: Path,
    settings: dict[str, str],
    log: Path,
    port: int | None = None,
    target: str = "webhook",
) -> Running:
    port = port or free_port()
    command = [
        str(python),
        str(ROOT / "server.py"),
        f"--target={target}",
        f"--source={source}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    with log.open("ab") as sink:
        spawned = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=source.parent,
            env=clean_env(settings),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    return Running(process, port, spawned, log)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
