"""CloudEvents on ``event`` as the HTTP binding encodes them (issue #11 item 3).

Events are made with the CloudEvents SDK (``cloudevents.conversion.to_binary`` and
``to_structured``); header values are then percent-encoded as the HTTP binding §3.1.3.2 says
(SDK 2.x does it; the installed 1.x leaves them raw). Sent over HTTP to a real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from emulator import Emulator
from helpers import INSTANCE, event_requests, server_env, successful_creates
from senders import source_settings
from tools.serve import function_server

SOURCE = "pipeline 31877 Ä658a"
ATTRIBUTES = {
    "type": "com.example.ci.pre-deploy",
    "source": SOURCE,
    "id": 'run "7" 100%',
    "time": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),  # fresh: inside the window
}
DATA = {"event": "pre-deploy", "instance_id": INSTANCE}  # no id: the key is source and id


@pytest.fixture(scope="module")
def queue(_emulator_process: Emulator) -> Iterator[str]:
    env = server_env(_emulator_process.url, **source_settings("https://smn.example"))
    with function_server(env, target="event") as url:
        yield url


def percent_encode(value: str) -> str:
    """HTTP binding 3.1.3.2: space, double-quote, percent and all but printable ASCII."""
    out: list[str] = []
    for char in value:
        if char in ' "%' or not "\x21" <= char <= "\x7e":
            out.extend(f"%{byte:02X}" for byte in char.encode())
        else:
            out.append(char)
    return "".join(out)


def binary(attributes: dict[str, str] = ATTRIBUTES) -> tuple[dict[str, str], bytes]:
    headers, body = to_binary(CloudEvent(attributes, DATA))
    encoded = {k: percent_encode(v) if k.startswith("ce-") else v for k, v in headers.items()}
    return {**encoded, "content-type": "application/json"}, body


def post(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=20)


def statuses(response: httpx.Response) -> list[Any]:
    return [r["outcome"] for r in response.json()["results"]]


def test_one_event_in_binary_and_structured_mode_is_one_backup(queue: str, emu: Emulator) -> None:
    headers, body = binary()
    assert headers["ce-source"] == "pipeline%2031877%20%C3%84658a"
    first = post(queue, headers, body)
    assert first.status_code == 200, first.text
    assert statuses(first) == ["started"]
    assert first.json()["results"][0]["trigger_id"] == 'run "7" 100%'

    structured_headers, structured_body = to_structured(CloudEvent(ATTRIBUTES, DATA))
    again = post(queue, structured_headers, structured_body)
    assert again.status_code == 200, again.text
    assert statuses(again) == ["exists"]
    assert again.json()["results"][0]["backup"]["id"] == first.json()["results"][0]["backup"]["id"]
    assert successful_creates(emu) == 1


def test_double_quoted_header_values_are_unquoted(queue: str, emu: Emulator) -> None:
    """Older senders quote values (RFC 7230 3.2.6) instead of encoding space and quote."""
    headers, body = binary()
    quoted = {
        **headers,
        "ce-source": '"pipeline 31877 %C3%84658a"',
        "ce-id": '"run \\"7\\" 100%25"',
    }
    first = post(queue, headers, body)
    again = post(queue, quoted, body)
    assert (statuses(first), statuses(again)) == (["started"], ["exists"]), again.text
    assert successful_creates(emu) == 1


def test_lower_case_and_needless_percent_encoding_are_accepted(queue: str, emu: Emulator) -> None:
    headers, body = binary()
    needless = {**headers, "ce-source": "%70ipeline%2031877%20%c3%84658a"}
    first = post(queue, headers, body)
    again = post(queue, needless, body)
    assert (statuses(first), statuses(again)) == (["started"], ["exists"]), again.text


@pytest.mark.parametrize("value", ["bad%C0%A0overlong", "bad%FFbyte", "cut%E2%82"])
def test_invalid_utf8_in_a_header_is_refused(queue: str, emu: Emulator, value: str) -> None:
    headers, body = binary()
    response = post(queue, {**headers, "ce-source": value}, body)
    assert 400 <= response.status_code < 500, response.text
    document = response.json()
    assert document["fields"][0]["field"] == "ce-source"
    assert "UTF-8" in document["fields"][0]["rule"]
    assert event_requests(emu) == []


def test_an_empty_batch_is_acknowledged_with_no_records(queue: str, emu: Emulator) -> None:
    """``[]`` is a valid batch (HTTP binding 3.3.2; cloudevents/spec json-format example)."""
    body = b"[] \n"  # as the spec's example (shared/payloads/ce/spec-7.json) has it
    assert json.loads(body) == []
    response = post(queue, {"content-type": "application/cloudevents-batch+json"}, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"results": []}
    assert event_requests(emu) == []
