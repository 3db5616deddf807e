"""The main job end to end on this machine: a signed pre-deploy event in, a job ID out.

Starts the TaurusDB/IAM emulator, the function under a real functions-framework server and a
callback receiver; fires ``events/samples/generic-pre-deploy.json`` signed with a fresh
``WEBHOOK_SECRET``; prints the job ID that the callback receiver got; stops everything.
Run it with ``./dev.sh demo``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess  # nosec B404 # the demo starts its own local processes
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from emulator.config import EmulatorConfig
from emulator.receiver import CallbackReceiver

ROOT = Path(__file__).resolve().parent
SAMPLE = ROOT / "events" / "samples" / "generic-pre-deploy.json"


def main() -> int:
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    callback_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    processes: list[subprocess.Popen[str]] = []
    receiver = CallbackReceiver(callback_secret).start()
    try:
        # B603: fixed argv: this interpreter, our module
        emulator = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "emulator", "--port", "0", "--backup-seconds", "3"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(emulator)
        api_url = _listening_url(emulator)
        step(f"emulator (IAM + TaurusDB API) on {api_url}")

        port = _free_port()
        env = {
            **os.environ,
            "OS_AUTH_URL": f"{api_url}/v3",
            "GAUSSDB_ENDPOINT": api_url,
            "OS_USERNAME": "demo",
            "OS_PASSWORD": EmulatorConfig().password,  # the emulator's documented demo password
            "OS_USER_DOMAIN_NAME": "OTC-EU-DE-00000000001000000001",
            "OS_PROJECT_ID": "619d3e78f61b4be68bc5aa0b59edcf7b",
            "WEBHOOK_SECRET": webhook_secret,
            "CALLBACK_SECRET": callback_secret,
            "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        }
        # B603: fixed argv: this interpreter, our module
        function = subprocess.Popen(  # nosec B603
            [
                sys.executable,
                "-m",
                "functions_framework",
                "--target=webhook",
                f"--source={ROOT / 'main.py'}",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(function)
        function_url = f"http://127.0.0.1:{port}/"
        _wait_until_up(function_url, function)
        step(f"function 'webhook' (functions-framework) on {function_url}")
        step(f"callback receiver on {receiver.url}")

        event = json.loads(SAMPLE.read_text())
        event["callback_url"] = f"{receiver.url}/hooks/backup"
        body = json.dumps(event)
        now = datetime.now(tz=UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": "msg_demo_" + secrets.token_hex(4),
            "webhook-timestamp": str(int(now.timestamp())),
        }
        headers["webhook-signature"] = Webhook(webhook_secret).sign(
            headers["webhook-id"], now, body
        )
        step(f"POST signed {SAMPLE.relative_to(ROOT)} (instance {event['instance_id']})")
        response = httpx.post(function_url, content=body.encode(), headers=headers, timeout=15)
        print(f"   ← {response.status_code} {response.text}")
        if response.status_code != 202:
            return fail("the function did not accept the event")

        callbacks = receiver.wait_for(1, timeout=10)
        if not callbacks:
            return fail("no callback arrived")
        callback = callbacks[0]
        verdict = "verified" if callback.verified else "NOT verified"
        kind = callback.payload["type"]
        step(f"callback {kind} received, signature {verdict} with CALLBACK_SECRET")
        if not callback.verified or callback.payload["job_id"] != response.json()["job_id"]:
            return fail("the callback does not carry the response's job ID")
        print(f"\njob_id: {callback.payload['job_id']}")
        return 0
    finally:
        receiver.stop()
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def step(text: str) -> None:
    print(f"-> {text}", flush=True)


def fail(reason: str) -> int:
    print(f"demo failed: {reason}", file=sys.stderr)
    return 1


def _listening_url(process: subprocess.Popen[str]) -> str:
    # B101: narrows types; stdout=PIPE above
    assert process.stdout is not None  # nosec B101
    line = process.stdout.readline().strip()
    if "listening on " not in line:
        raise SystemExit(f"emulator did not start: {line!r}")
    return line.rsplit(" ", 1)[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read() if process.stderr else ""
            raise SystemExit(f"the function did not start:\n{error}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the function did not start within 30 s")


if __name__ == "__main__":
    raise SystemExit(main())
