"""The deadline holds (issue #10, item 6): a callback receiver that accepts the connection and
never answers costs its share of DEADLINE_SECONDS, then the answer goes out with the job ID and
the callback's failure. Measured at the client, against the function under a real server.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from emulator import Emulator
from helpers import INSTANCE, backups_on, event, server_env, sign
from tools.serve import function_server

DEADLINE = 3.0
SLACK = 0.5  # the bound: DEADLINE_SECONDS + 0.5 s at the client
OTHER = f"{1:032x}in07"  # the emulator's second instance
UNKNOWN = "0123456789abcdef0123456789abcdefin07"


class HangingReceiver:
    """Accepts every connection, reads nothing, answers nothing, closes nothing."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"

    def _accept(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self._held.append(connection)

    def __enter__(self) -> HangingReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for connection in self._held:
            connection.close()
        self._server.close()


@pytest.fixture
def hanging() -> Iterator[HangingReceiver]:
    with HangingReceiver() as receiver:
        yield receiver


def environment(emu: Emulator) -> dict[str, str]:
    # CALLBACK_TIMEOUT_SECONDS (5) and CALLBACK_RETRY_SECONDS (8) keep their defaults: both
    # are longer than the deadline, which is the point.
    return server_env(emu.url, DEADLINE_SECONDS=str(DEADLINE))


@pytest.fixture
def webhook(emu: Emulator) -> Iterator[str]:
    with function_server(environment(emu)) as url:
        yield url


@pytest.fixture
def event_entry(emu: Emulator) -> Iterator[str]:
    with function_server(environment(emu), target="event") as url:
        yield url


def timed_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    return response, time.monotonic() - started


def test_hanging_callback_receiver_cannot_delay_the_answer(
    webhook: str, emu: Emulator, hanging: HangingReceiver
) -> None:
    body = event(callback_url=hanging.url)
    response, seconds = timed_post(webhook, body, sign(body))
    assert seconds <= DEADLINE + SLACK, seconds
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["job_id"] and answer["callbacks"] == {"backup.started": {"delivered": False}}
    assert hanging.accepted >= 1  # the receiver was really tried
    assert len(backups_on(emu)) == 1


def test_each_trigger_gets_its_share_of_the_deadline(
    webhook: str, emu: Emulator, hanging: HangingReceiver
) -> None:
    body = event(instance_id=None, instance_ids=[INSTANCE, OTHER], callback_url=hanging.url)
    response, seconds = timed_post(webhook, body, sign(body))
    assert seconds <= DEADLINE + SLACK, seconds
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [r["created"] for r in results] == [True, True]  # the second got its time
    assert all(
        r["job_id"] and r["callbacks"]["backup.started"] == {"delivered": False} for r in results
    )
    assert len(backups_on(emu, INSTANCE)) == len(backups_on(emu, OTHER)) == 1


def test_failed_callbacks_of_a_queue_delivery_stay_within_the_deadline(
    event_entry: str, emu: Emulator, hanging: HangingReceiver
) -> None:
    # Pub/Sub push (the envelope Google documents): a poison message is acknowledged after a
    # backup.failed callback, which the hanging receiver never takes.
    document = {
        "event": "pre-deploy",
        "id": "m-1",
        "instance_id": UNKNOWN,
        "callback_url": hanging.url,
    }
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(document).encode()).decode(),
            "messageId": "m-1",
        },
        "subscription": "projects/acme/subscriptions/predeploy",
    }
    body = json.dumps(envelope).encode()
    response, seconds = timed_post(event_entry, body, {"Content-Type": "application/json"})
    assert seconds <= DEADLINE + SLACK, seconds
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["outcome"], result["error_code"]) == ("failed", "DBS.200002")
    assert hanging.accepted >= 1
