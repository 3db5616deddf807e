"""The function under its real server process (server.py, as the image runs it), and the demo."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import CALLBACK_SECRET, ROOT, creates, event, event_requests, server_env, sign
from tools.serve import function_server


@pytest.fixture
def server(emu: Emulator) -> Iterator[str]:
    with function_server(server_env(emu.url)) as url:
        yield url


def test_real_server_creates_backup_and_calls_back(server: str, emu: Emulator) -> None:
    with CallbackReceiver(CALLBACK_SECRET) as receiver:
        body = event(callback_url=receiver.url + "/cb")
        response = httpx.post(server, content=body, headers=sign(body), timeout=15)
        assert response.status_code == 202, response.text
        (callback,) = receiver.wait_for(1)
    assert callback.verified
    assert callback.payload["job_id"] == response.json()["job_id"]
    assert len(creates(emu)) == 1


def test_real_server_refuses_forged_event(server: str, emu: Emulator) -> None:
    body = event()
    headers = {**sign(body), "webhook-signature": sign(b"{}")["webhook-signature"]}
    response = httpx.post(server, content=body, headers=headers, timeout=15)
    assert response.status_code == 401
    # Only the server's prefetch at start (IAM token, API connection: tests/e2e/test_prefetch.py)
    # reached the emulator; the forged event made no API call.
    assert event_requests(emu) == []


def test_demo_prints_the_job_id_the_receiver_got() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "demo.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("job_id: ")
    assert len(last.removeprefix("job_id: ")) == 36
    assert "signature verified with CALLBACK_SECRET" in result.stdout
