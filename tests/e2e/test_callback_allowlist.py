"""CALLBACK_ALLOWED_HOSTS names ports, and answers say whether a callback was delivered, not
what the receiver answered (issue #10, item 7). Against the function under a real server.

With ``127.0.0.1`` allowed, a sender could reach every port and path of that host and read
back the status code: a port scanner. With ``127.0.0.1:PORT`` only that port is reachable, and
the answer carries ``{"delivered": true|false}``; the receiver's status and error go to the log.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import backups_on, event, event_requests, server_env, sign
from tools.serve import free_port, function_server


@pytest.fixture
def logfile() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "server.log"


@pytest.fixture
def server(emu: Emulator, receiver: CallbackReceiver, logfile: Path) -> Iterator[str]:
    port = receiver.url.rsplit(":", 1)[1]
    env = server_env(
        emu.url,
        CALLBACK_ALLOWED_HOSTS=f"127.0.0.1:{port}",
        CALLBACK_RETRY_SECONDS="0",  # one attempt
    )
    with logfile.open("w") as log, function_server(env, log=log) as url:
        yield url


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url, content=body, headers=sign(body), timeout=15)


def test_allowed_port_is_called_back(
    server: str, emu: Emulator, receiver: CallbackReceiver
) -> None:
    response = post(server, event(callback_url=receiver.url + "/cb"))
    assert response.status_code == 202, response.text
    assert response.json()["callbacks"] == {"backup.started": {"delivered": True}}
    (callback,) = receiver.wait_for(1)
    assert callback.verified


def test_other_port_of_an_allowed_host_is_refused(server: str, emu: Emulator) -> None:
    with socket.socket() as listener:  # something listens there: only the list refuses it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        response = post(server, event(callback_url=f"http://127.0.0.1:{port}/admin"))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["fields"] == [
        {
            "field": "callback_url",
            "rule": "must use https (http is allowed only for hosts in CALLBACK_ALLOWED_HOSTS)",
        }
    ]
    assert event_requests(emu) == []  # refused before anything happened
    assert backups_on(emu) == []


def test_receiver_status_and_error_stay_in_the_log(
    server: str, receiver: CallbackReceiver, logfile: Path
) -> None:
    receiver.status = 500
    response = post(server, event(callback_url=receiver.url + "/x"))
    assert response.status_code == 202, response.text
    assert response.json()["callbacks"] == {"backup.started": {"delivered": False}}
    assert "500" not in json.dumps(response.json()["callbacks"])
    lines = [json.loads(x) for x in logfile.read_text().splitlines() if x.startswith("{")]
    failed = [x for x in lines if x.get("outcome") == "callback_failed"]
    assert failed and failed[-1]["callback_status"] == 500
    assert failed[-1]["error"] == "the callback receiver answered 500"


def test_bare_host_allows_every_port(emu: Emulator, receiver: CallbackReceiver) -> None:
    """What the docs say a bare host allows: any port (and path) of that host."""
    env = server_env(emu.url, CALLBACK_ALLOWED_HOSTS="127.0.0.1")
    closed = free_port()
    with function_server(env) as url:
        here = post(url, event(id="d-1", callback_url=receiver.url))
        elsewhere = post(url, event(id="d-2", callback_url=f"http://127.0.0.1:{closed}/"))
    assert here.json()["callbacks"] == {"backup.started": {"delivered": True}}
    assert elsewhere.status_code == 202  # allowed; nobody listens, so not delivered
    assert elsewhere.json()["callbacks"] == {"backup.started": {"delivered": False}}


def test_malformed_port_is_a_configuration_error(emu: Emulator) -> None:
    env = server_env(emu.url, CALLBACK_ALLOWED_HOSTS="127.0.0.1:99999")
    with function_server(env) as url:
        response = post(url, event())
    assert response.status_code == 500
    assert response.json()["error"] == "configuration_error"
    assert "CALLBACK_ALLOWED_HOSTS" in response.json()["message"]
    assert "from 1 to 65535" in response.json()["message"]
    assert event_requests(emu) == []
