"""`./dev.sh serve` (tools.stack) with `tools.invoke`: every sample makes a backup, as a user
runs them, over real sockets: the stack in its own process, invoke in another."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helpers import ROOT, SAMPLES
from tools.localenv import read_dotenv
from tools.serve import free_port
from tools.stack import _parse


@dataclass
class Stack:
    process: subprocess.Popen[str]
    exports: Path
    env: dict[str, str]
    ports: dict[str, int]


def _start(
    tmp_path: Path, ports: dict[str, int], stderr: int = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tools.stack", "--backup-seconds", "0.2"]
    for option, port in ports.items():
        argv += [f"--{option}-port", str(port)]
    argv += ["--exports", str(tmp_path / "serve.env")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "WEBHOOK", "INVOKE"))}
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp_path = tmp_path_factory.mktemp("stack")
    ports = {name: free_port() for name in ("emulator", "webhook", "event", "receiver")}
    process = _start(tmp_path, ports)
    exports = tmp_path / "serve.env"
    deadline = time.monotonic() + 60
    while not exports.exists():
        assert process.poll() is None, "the stack ended before it was up"
        assert time.monotonic() < deadline, "the stack was not up in 60 s"
        time.sleep(0.2)
    time.sleep(0.2)  # the file is written in one go; let the writer finish
    env = {**os.environ, **read_dotenv(exports)}
    yield Stack(process, exports, env, ports)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def _invoke(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.invoke", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_exports_name_what_invoke_needs_and_nothing_of_the_users(stack: Stack) -> None:
    names = set(stack.env) & set(read_dotenv(stack.exports))
    assert {
        "WEBHOOK_SECRET",
        "GITHUB_WEBHOOK_SECRET",
        "GITLAB_WEBHOOK_TOKEN",
        "SMN_ENDPOINT",
        "INVOKE_WEBHOOK_URL",
        "INVOKE_EVENT_URL",
        "INVOKE_CALLBACK_URL",
    } <= names
    assert stack.env["INVOKE_WEBHOOK_URL"] == f"http://127.0.0.1:{stack.ports['webhook']}/"
    assert stack.exports.stat().st_mode & 0o077 == 0  # secrets: readable by the user only
    instances = httpx.get(
        f"http://127.0.0.1:{stack.ports['emulator']}/_emulator/instances", timeout=5
    ).json()["instances"]
    assert "5f2d9a4c8e7b4b1da3c60f9e2b7d1a84in07" in {i["id"] for i in instances}


def test_every_sample_makes_a_backup_and_calls_back_locally(stack: Stack) -> None:
    samples = sorted(str(p) for p in SAMPLES.glob("*.json"))  # headers files included: skipped
    result = _invoke(stack, *samples)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len([s for s in samples if not s.endswith(".headers.json")])
    assert f"invoke: {count} of {count} ended well" in result.stderr
    assert result.stderr.count("made now") >= count, result.stderr
    emulator = f"http://127.0.0.1:{stack.ports['emulator']}"
    log = httpx.get(f"{emulator}/_emulator/requests", timeout=5).json()["requests"]
    creates = [r for r in log if r["path"].endswith("/backups/create")]
    assert len(creates) >= count


def test_callbacks_arrive_verified_at_the_local_receiver(stack: Stack) -> None:
    result = _invoke(stack, str(SAMPLES / "generic-pre-deploy.json"), "--id", "msg_cb")
    assert result.returncode == 0, result.stderr
    assert stack.process.stdout is not None
    deadline = time.monotonic() + 20
    seen = []
    os.set_blocking(stack.process.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = stack.process.stdout.readline()
        if not line:
            time.sleep(0.1)
            continue
        seen.append(line)
        if line.startswith("callback backup.started: signature verified"):
            break
    else:
        pytest.fail(f"no verified callback printed; saw: {seen[-5:]}")


def test_status_endpoint_by_get(stack: Stack) -> None:
    result = _invoke(stack, str(SAMPLES / "generic-pre-deploy.json"))
    assert result.returncode == 0, result.stderr
    answer = result.stdout.partition("\n")[2]
    backup_id = httpx.Response(200, content=answer.encode()).json()["backup"]["id"]
    status = _invoke(stack, "--get", f"/backups/{backup_id}")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("HTTP 200\n")
    assert '"status": "' in status.stdout
    missing = _invoke(stack, "--get", "/backups/00000000000000000000000000000000br07")
    assert missing.returncode == 1
    assert missing.stdout.startswith("HTTP 404\n")


def test_a_busy_port_is_named_with_its_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"emulator": free_port(), "webhook": port, "event": free_port()}
        process = _start(tmp_path, {**ports, "receiver": free_port()}, stderr=subprocess.PIPE)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert f"port(s) in use on 127.0.0.1: {port} (--webhook-port)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "serve.env").exists()


def test_ctrl_c_stops_everything_and_removes_the_exports(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("emulator", "webhook", "event", "receiver")}
    process = _start(tmp_path, ports)
    exports = tmp_path / "serve.env"
    deadline = time.monotonic() + 60
    while not exports.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert exports.exists()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert not exports.exists()
    for port in ports.values():
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def test_the_documented_ports_are_the_defaults() -> None:
    """docs/emulator.md's table of ports is what ./dev.sh serve uses without options."""
    defaults = vars(_parse([]))
    page = (ROOT / "docs" / "emulator.md").read_text()
    rows = re.findall(r"\| (\d+) \| `--([a-z]+)-port` \|", page)
    assert {name for _, name in rows} == {"emulator", "webhook", "event", "receiver"}
    for port, name in rows:
        assert defaults[f"{name}_port"] == int(port), name
