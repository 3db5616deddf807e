"""Limits with clear errors: body size (413), content type (415), JSON nesting depth, and the
number of records and instances one event may carry (400), each before anything upstream."""

from __future__ import annotations

import io
import json
from typing import Any, cast

import pytest
from flask.testing import FlaskClient

from config import Settings
from emulator import Emulator
from errors import InvalidEventError
from events.base import check_batch, check_count, json_depth, json_object
from helpers import INSTANCE, event, make_client, sign
from models import Trigger


def answer(response: Any) -> dict[str, Any]:
    return cast(dict[str, Any], response.get_json())


# --------------------------------------------------------------------------------------
# Body size


def test_body_over_the_limit_is_413_by_content_length(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    body = event(description="d" * 200)
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 413
    assert answer(response) == {
        "error": "payload_too_large",
        "message": "the body is larger than MAX_BODY_BYTES (100 bytes)",
    }
    assert emu.requests() == []


def test_body_over_the_limit_is_413_without_content_length(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """A chunked body announces no length: the function stops reading at the limit."""
    monkeypatch.setenv("MAX_BODY_BYTES", "100")
    body = event(description="d" * 200)
    response = make_client().post(
        "/",
        input_stream=io.BytesIO(body),
        headers={**sign(body), "Transfer-Encoding": "chunked"},
        # What a server (gunicorn) says when it has de-chunked a body of unknown length.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.request.content_length is None
    assert response.status_code == 413
    assert "MAX_BODY_BYTES (100 bytes)" in answer(response)["message"]
    assert emu.requests() == []


def test_default_limit_is_one_mebibyte(env: dict[str, str], emu: Emulator) -> None:
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 413
    assert "MAX_BODY_BYTES (1048576 bytes)" in answer(response)["message"]


def test_body_at_the_limit_is_read(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    body = event()
    monkeypatch.setenv("MAX_BODY_BYTES", str(len(body)))
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 202, answer(response)


# --------------------------------------------------------------------------------------
# Content type


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_body_that_is_not_json_is_415(
    env: dict[str, str], emu: Emulator, content_type: str
) -> None:
    body = event()
    headers = {**sign(body), "Content-Type": content_type}
    response = make_client().post("/", data=body, headers=headers)
    assert response.status_code == 415
    assert answer(response)["error"] == "unsupported_media_type"
    assert "Content-Type must be application/json" in answer(response)["message"]
    assert emu.requests() == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_content_types_are_accepted(
    env: dict[str, str], emu: Emulator, content_type: str
) -> None:
    body = event()
    response = make_client().post(
        "/", data=body, headers={**sign(body), "Content-Type": content_type}
    )
    assert response.status_code == 202, answer(response)


# --------------------------------------------------------------------------------------
# JSON nesting depth


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(("value", "depth"), [(1, 0), ({}, 1), ([[]], 2), (nested(7), 7)])
def test_json_depth(value: Any, depth: int) -> None:
    assert json_depth(value) == depth


def test_json_depth_survives_hostile_depth() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    assert json_depth(value) == 100_001


def test_json_object_enforces_the_depth() -> None:
    assert json_object(json.dumps({"a": nested(3)}).encode(), max_depth=4) == {"a": nested(3)}
    with pytest.raises(InvalidEventError) as caught:
        json_object(json.dumps({"a": nested(4)}).encode(), max_depth=4)
    assert caught.value.message == "body is nested more than MAX_JSON_DEPTH (4) levels deep"


def post_signed(client: FlaskClient, body: bytes) -> Any:
    return client.post("/", data=body, headers=sign(body))


def test_too_deep_body_is_400_naming_the_limit(env: dict[str, str], emu: Emulator) -> None:
    body = json.dumps({"event": "pre-deploy", "instance_id": INSTANCE, "x": nested(32)}).encode()
    response = post_signed(make_client(), body)
    assert response.status_code == 400
    assert answer(response)["message"] == (
        "body is nested more than MAX_JSON_DEPTH (32) levels deep"
    )
    assert emu.requests() == []


def test_hostile_depth_is_400_not_a_crash(env: dict[str, str], emu: Emulator) -> None:
    body = b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    response = post_signed(make_client(), body)
    assert response.status_code == 400
    assert "MAX_JSON_DEPTH" in answer(response)["message"]
    assert emu.requests() == []


def test_depth_limit_is_a_setting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("MAX_JSON_DEPTH", "2")
    body = json.dumps({"event": "pre-deploy", "instance_id": INSTANCE, "x": {"y": {}}}).encode()
    response = post_signed(make_client(), body)
    assert response.status_code == 400
    assert "MAX_JSON_DEPTH (2)" in answer(response)["message"]


def test_depth_within_the_limit_reaches_the_event_rules(env: dict[str, str], emu: Emulator) -> None:
    body = json.dumps({"event": "pre-deploy", "instance_id": INSTANCE, "x": nested(30)}).encode()
    response = post_signed(make_client(), body)
    assert response.status_code == 400
    assert answer(response)["fields"] == [{"field": "x", "rule": "is not a known field"}]


# --------------------------------------------------------------------------------------
# Records and instances per event


def trigger(number: int, instance: str = INSTANCE) -> Trigger:
    return Trigger(
        source="test",
        trigger_id=f"t{number}",
        key=f"test:t{number}",
        instance_id=instance,
    )


def instance(number: int) -> str:
    return f"{number:032x}in07"


def test_check_count_names_the_field_the_limit_and_the_setting() -> None:
    check_count("Records", 100, 100, "MAX_RECORDS_PER_EVENT")
    with pytest.raises(InvalidEventError) as caught:
        check_count("Records", 101, 100, "MAX_RECORDS_PER_EVENT")
    assert caught.value.message == (
        "the event has 101 Records; at most MAX_RECORDS_PER_EVENT (100) are accepted"
    )
    (error,) = caught.value.errors
    assert (error.field, error.rule) == (
        "Records",
        "must have at most 100 items (MAX_RECORDS_PER_EVENT)",
    )


def test_batch_limits_default_and_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_RECORDS_PER_EVENT", "MAX_INSTANCES_PER_EVENT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.max_records_per_event, settings.max_instances_per_event) == (100, 10)

    check_batch([trigger(n) for n in range(100)], settings)  # 100 records, one instance
    check_batch([trigger(n, instance(n)) for n in range(10)], settings)  # 10 instances
    with pytest.raises(InvalidEventError, match=r"101 records; at most MAX_RECORDS_PER_EVENT"):
        check_batch([trigger(n) for n in range(101)], settings)
    with pytest.raises(InvalidEventError, match=r"11 instances; at most MAX_INSTANCES_PER_EVENT"):
        check_batch([trigger(n, instance(n)) for n in range(11)], settings)


def test_batch_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RECORDS_PER_EVENT", "3")
    monkeypatch.setenv("MAX_INSTANCES_PER_EVENT", "1")
    settings = Settings()
    check_batch([trigger(n) for n in range(3)], settings)
    with pytest.raises(InvalidEventError, match=r"MAX_RECORDS_PER_EVENT \(3\)"):
        check_batch([trigger(n) for n in range(4)], settings)
    with pytest.raises(InvalidEventError, match=r"MAX_INSTANCES_PER_EVENT \(1\)"):
        check_batch([trigger(1, instance(1)), trigger(2, instance(2))], settings)


def test_batch_limit_applies_to_a_single_event_too(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    """``main`` checks every source's result: with a limit of 0 nothing could pass."""
    monkeypatch.setenv("MAX_INSTANCES_PER_EVENT", "1")
    response = post_signed(make_client(), event())
    assert response.status_code == 202, answer(response)


class Upload(io.RawIOBase):
    """A request body of ``size`` bytes that counts how much of it anyone reads."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = b" " * count
        self.left -= count
        self.read_total += count
        return count


@pytest.mark.parametrize("announced", [True, False])
def test_oversized_body_is_not_read_after_the_answer(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, announced: bool
) -> None:
    """functions-framework drains the request after a response; not after a 413."""
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    upload = Upload(50 * 1024 * 1024)
    environ: dict[str, Any] = {"wsgi.input": io.BufferedReader(upload, buffer_size=1024)}
    if announced:
        environ["CONTENT_LENGTH"] = str(50 * 1024 * 1024)
    else:
        environ["wsgi.input_terminated"] = True
    response = make_client().post(
        "/", headers={"Content-Type": "application/json"}, environ_overrides=environ
    )
    assert response.status_code == 413
    assert upload.read_total <= 1000 + 1024  # the limit, plus one buffer at most
