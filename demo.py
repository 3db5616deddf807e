"""The main job end to end on this machine: a signed pre-deploy event in, a job ID out.

Starts the TaurusDB/IAM emulator, the function under its real server (server.py) and a
callback receiver; fires ``events/samples/generic-pre-deploy.json`` signed with a fresh
``WEBHOOK_SECRET``; prints the job ID that the callback receiver got; stops everything.
Run it with ``./dev.sh demo``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess  # nosec B404 # the demo starts its own local processes
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from emulator.config import EmulatorConfig
from emulator.receiver import CallbackReceiver
from tools import localenv
from tools.serve import function_server, stop

ROOT = Path(__file__).resolve().parent
SAMPLE = ROOT / "events" / "samples" / "generic-pre-deploy.json"


def main() -> int:
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    callback_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with contextlib.ExitStack() as stack:
        api_url = stack.enter_context(_emulator())
        step(f"emulator (IAM + TaurusDB API) on {api_url}")
        env = {
            **localenv.load(),  # this shell over .env, with the cloud and secrets of the demo
            **EmulatorConfig().function_env(api_url),  # the emulator's documented demo user
            "WEBHOOK_SECRET": webhook_secret,
            "CALLBACK_SECRET": callback_secret,
            "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        }
        function_url = stack.enter_context(function_server(env))
        step(f"function 'webhook' (server.py, as the image runs it) on {function_url}")
        receiver = stack.enter_context(CallbackReceiver(callback_secret))
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
        print(f"   <- {response.status_code} {response.text}")
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
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _emulator() -> Iterator[str]:
    """``python -m emulator`` in its own process, as a user would start it; yields its URL."""
    # B603: fixed argv: this interpreter, our module
    process = subprocess.Popen(  # nosec B603
        [sys.executable, "-m", "emulator", "--port", "0", "--backup-seconds", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None  # nosec B101
        line = process.stdout.readline().strip()
        if "listening on " not in line:
            raise SystemExit(f"emulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1]
    finally:
        stop(process)


def step(text: str) -> None:
    print(f"-> {text}", flush=True)


def fail(reason: str) -> int:
    print(f"demo failed: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
