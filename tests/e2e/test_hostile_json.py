"""Bodies the JSON parser or the models can choke on never reach a 5xx (issue #10, item 3).

Run against the function under a real functions-framework server. On ``webhook`` each is a
``400`` naming where the bad value is, and nothing reaches the API; on ``event`` the record
that holds it is an acknowledged failure and the other records of the delivery are served.
The batch shapes are the senders' own: CloudEvents batched mode (CloudEvents HTTP binding,
section 3.3, as in tests/functional/test_sources_cloudevents.py), the Pub/Sub push envelope
(events/samples, Google's push docs) and FunctionGraph's DMS for Kafka trigger event
(otc-functiongraph-python-runtime ``fg-events/kafka``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from emulator import Emulator
from helpers import INSTANCE, backups_on, event_requests, server_env, sign
from tools.serve import function_server

OTHER = f"{1:032x}in07"  # the emulator's second instance
HUGE = "9" * 4301  # one digit over Python's int-conversion limit

# (raw JSON text of one event with a hostile value, the field the 400 must name)
HOSTILE: dict[str, tuple[str, str]] = {
    "huge integer": ('{"event":"pre-deploy","id":"d-1","instance_id":"@I","n":@H}', "n"),
    "huge negative integer": ('{"event":"pre-deploy","x":[1,{"y":-@H}]}', "x.1.y"),
    "NaN": ('{"event":"pre-deploy","id":"d-1","instance_id":"@I","n":NaN}', "n"),
    "Infinity": ('{"event":"pre-deploy","id":"d-1","instance_id":"@I","n":-Infinity}', "n"),
    "float overflow": ('{"event":"pre-deploy","id":"d-1","instance_id":"@I","n":1e999}', "n"),
    "lone surrogate": ('{"event":"pre-deploy","id":"\\ud800","instance_id":"@I"}', "id"),
    "surrogate in a name": ('{"event":"pre-deploy","a":{"\\udfff":1}}', "a"),
}


def hostile(kind: str, instance: str = INSTANCE) -> tuple[bytes, str]:
    """The event's raw bytes (as a sender could write them) and the field a 400 names."""
    template, field = HOSTILE[kind]
    return template.replace("@I", instance).replace("@H", HUGE).encode(), field


@pytest.fixture
def webhook(emu: Emulator) -> Iterator[str]:
    with function_server(server_env(emu.url)) as url:
        yield url


@pytest.fixture
def event_entry(emu: Emulator) -> Iterator[str]:
    env = server_env(emu.url, CALLBACK_RETRY_SECONDS="0")
    with function_server(env, target="event") as url:
        yield url


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_webhook_refuses_hostile_values_with_400(webhook: str, emu: Emulator, kind: str) -> None:
    body, field = hostile(kind)
    response = httpx.post(webhook, content=body, headers=sign(body), timeout=15)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == "invalid_event"
    assert answer["fields"][0]["field"] == field
    assert answer["message"].startswith(field + " ")
    assert event_requests(emu) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xef\xbb\xbf" + b'{"event":"pre-deploy"}', None),  # a BOM: read as UTF-8-sig
        (b'{"event":"pre-deploy","id":"\xff\xfe"}', "body is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "body is nested more than MAX_JSON_DEPTH"),
        (b'{"event":"pre-deploy","event":"pre-deploy","id":7}', None),  # duplicates: last wins
        (b'{"event":"pre-deploy"', "body is not valid JSON"),
    ],
)
def test_webhook_refuses_unparsable_bodies_with_400(
    webhook: str, emu: Emulator, body: bytes, message: str | None
) -> None:
    headers = (
        sign(body)
        if _utf8(body)
        else {"Content-Type": "application/json", "Authorization": "Bearer nope"}
    )
    response = httpx.post(webhook, content=body, headers=headers, timeout=15)
    assert 400 <= response.status_code < 500, response.text
    if message is not None and _utf8(body):
        assert response.json()["message"].startswith(message)
    assert event_requests(emu) == []


def _utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _good(event_id: str, instance: str) -> dict[str, str]:
    return {"event": "pre-deploy", "id": event_id, "instance_id": instance}


def test_cloudevents_batch_serves_the_good_event_next_to_a_huge_number(
    event_entry: str, emu: Emulator
) -> None:
    bad = (
        '{"specversion":"1.0","id":"e-1","source":"ci","type":"com.example.pre-deploy",'
        '"datacontenttype":"application/json","data":{"event":"pre-deploy","id":"d-1",'
        f'"instance_id":"{INSTANCE}","n":{HUGE}}}}}'
    )
    good = json.dumps(
        {
            "specversion": "1.0",
            "id": "e-2",
            "source": "ci",
            "type": "com.example.pre-deploy",
            "datacontenttype": "application/json",
            "data": _good("d-2", OTHER),
        }
    )
    body = f"[{bad},{good}]".encode()
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    response = httpx.post(event_entry, content=body, headers=headers, timeout=15)
    assert response.status_code == 200, response.text  # acknowledged: a retry cannot help
    first, second = response.json()["results"]
    assert (first["outcome"], first["http_status"], first["retry"]) == ("failed", 400, False)
    assert first["fields"] == [
        {"field": "0.data.n", "rule": "is a number with more than 4300 digits"}
    ]
    assert second["created"] is True and second["job_id"]
    assert backups_on(emu, INSTANCE) == []
    assert len(backups_on(emu, OTHER)) == 1


def test_pubsub_message_with_a_huge_number_is_acknowledged(event_entry: str, emu: Emulator) -> None:
    data = f'{{"event":"pre-deploy","id":"d-1","instance_id":"{INSTANCE}","n":{HUGE}}}'
    envelope = {
        "message": {"data": base64.b64encode(data.encode()).decode(), "messageId": "m-1"},
        "subscription": "projects/acme/subscriptions/predeploy",
    }
    response = httpx.post(event_entry, json=envelope, timeout=15)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert (result["outcome"], result["retry"]) == ("failed", False)
    assert result["fields"][0]["field"] == "message.data.n"
    assert event_requests(emu) == []


@pytest.mark.parametrize("kind", ["huge integer", "lone surrogate", "NaN", "float overflow"])
def test_kafka_trigger_serves_the_other_messages(
    event_entry: str, emu: Emulator, kind: str
) -> None:
    raw, _ = hostile(kind)
    inner = raw.decode()
    # As the message's text (read when the record is read); written into the envelope, so that
    # the envelope's own parse meets the value (a \ud800 escape in the message string); and a
    # huge number next to a message object's text: each refuses its record only.
    as_text = json.dumps(inner)
    in_envelope = '"' + inner.replace('"', '\\"') + '"'
    beside = f'{{"message":{as_text},"n":{HUGE}}}'
    good = json.dumps(json.dumps(_good("d-9", OTHER)))
    body = (
        '{"event_version":"v1.0","trigger_type":"KAFKA","region":"eu-de",'
        '"instance_id":"81335d56-b9fe-4679-ba95-7030949cc76b","records":[{"topic_id":"deploys",'
        f'"messages":[{as_text},{in_envelope},{beside},{good}]'
        "}]}"
    )
    response = httpx.post(
        event_entry,
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=15,
    )
    assert response.status_code == 200, response.text
    *bad, good_result = response.json()["results"]
    assert [(r["outcome"], r["http_status"], r["retry"]) for r in bad] == [
        ("failed", 400, False)
    ] * 3
    assert bad[2]["fields"][0]["field"] == "records.0.messages.2.n"
    assert good_result["created"] is True and good_result["job_id"]
    assert backups_on(emu, INSTANCE) == []
    assert len(backups_on(emu, OTHER)) == 1


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_event_refuses_deep_nesting_without_a_5xx(
    event_entry: str, emu: Emulator, depth: int
) -> None:
    # Any JSON on `event` is looked at for every sender's shape (and for a misdirected webhook
    # delivery) before it is read: none of those looks may choke on the depth.
    body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    response = httpx.post(
        event_entry, content=body, headers={"Content-Type": "application/json"}, timeout=15
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_event"
    assert event_requests(emu) == []
