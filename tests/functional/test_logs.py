"""Log lines: JSON, one outcome line per event with every field, correct under LOG_EXECUTION_ID."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import logs
from emulator import Emulator
from helpers import (
    CALLBACK_SECRET,
    INSTANCE,
    WEBHOOK_SECRET,
    env_fixture,
    event,
    make_client,
    sign,
)

OUTCOME_FIELDS = {
    "time",
    "level",
    "severity",
    "logger",
    "message",
    "correlation_id",
    "trace_id",
    "entry_point",
    "outcome",
    "status",
    "source",
    "trigger_id",
    "instance_id",
    "backup_id",
    "job_id",
    "duration_ms",
}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


env = env_fixture(LOG_EXECUTION_ID=None, LOG_LEVEL=None)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """functions-framework's LOG_EXECUTION_ID set-up reconfigures the root logger: undo it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line, parsed: a line that is not a JSON object fails the test."""
    parsed = []
    for line in text.splitlines():
        if line.strip():
            value = json.loads(line)
            assert isinstance(value, dict), line
            parsed.append(value)
    return parsed


def outcome_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in lines(text) if line.get("logger") == "predeploy.event"]


def test_backup_started_writes_one_outcome_line_with_every_field(
    env: dict[str, str], emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client()
    capsys.readouterr()
    body = event()
    headers = {**sign(body), "X-CFF-Request-Id": "cff-req-0001", "traceparent": TRACEPARENT}
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    err = capsys.readouterr().err

    (line,) = outcome_lines(err)
    assert line.keys() >= OUTCOME_FIELDS, OUTCOME_FIELDS - line.keys()
    assert line["level"] == "INFO"
    assert line["message"] == "event handled"
    assert line["correlation_id"] == "cff-req-0001"
    assert line["trace_id"] == TRACE
    assert line["entry_point"] == "webhook"
    assert line["outcome"] == "backup_started"
    assert line["status"] == 202
    assert line["source"] == "generic"
    assert line["trigger_id"] == "deploy-4711"
    assert line["instance_id"] == INSTANCE
    assert line["job_id"] == response.get_json()["job_id"]
    assert line["backup_id"] == response.get_json()["backup"]["id"]
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    # every other line of the request carries the same ids
    assert {(x.get("correlation_id"), x.get("trace_id")) for x in lines(err)} == {
        ("cff-req-0001", TRACE)
    }


def test_each_trigger_gets_one_outcome_line_whatever_happened(
    env: dict[str, str], emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started, found again, dry run: one line with an ``outcome`` each, from one place."""
    client = make_client()
    for data, status, outcome in [
        (event(id="one"), 202, "backup_started"),
        (event(id="one"), 200, "backup_exists"),
        (event(id="two", instance_id=emu.config.instances[1], dry_run=True), 200, "dry_run"),
    ]:
        capsys.readouterr()
        response = client.post("/", data=data, headers=sign(data))
        assert response.status_code == status, response.get_data(as_text=True)
        with_outcome = [line for line in lines(capsys.readouterr().err) if "outcome" in line]
        (line,) = with_outcome
        assert (line["logger"], line["outcome"], line["status"]) == (
            "predeploy.event",
            outcome,
            status,
        )
        assert line["backup_name"].startswith("predeploy-")


def test_a_backup_that_ended_failed_is_logged_as_an_error(
    env: dict[str, str], emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.configure(backup_seconds=0.2)
    emu.put_instance(INSTANCE, fail_backups=True)
    client = make_client()
    capsys.readouterr()
    data = event(wait=True)
    response = client.post("/", data=data, headers=sign(data))
    assert response.status_code == 502, response.get_data(as_text=True)
    with_outcome = [line for line in lines(capsys.readouterr().err) if "outcome" in line]
    (line,) = with_outcome
    assert (line["outcome"], line["status"], line["level"]) == ("backup_failed", 502, "ERROR")


def test_waiting_logs_the_job_id_before_the_one_outcome_line(
    env: dict[str, str], emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wait can outlast the process: the job ID is logged as soon as it exists (a progress
    line without ``outcome``), the trigger's one outcome line comes when the wait ends."""
    client = make_client()
    capsys.readouterr()
    data = event(wait=True)
    response = client.post("/", data=data, headers=sign(data))
    assert response.status_code == 200, response.get_data(as_text=True)
    job_id = response.get_json()["job_id"]
    parsed = lines(capsys.readouterr().err)
    (waiting,) = [line for line in parsed if line["message"] == "waiting for the backup"]
    assert "outcome" not in waiting
    assert (waiting["job_id"], waiting["trigger_id"], waiting["instance_id"]) == (
        job_id,
        "deploy-4711",
        INSTANCE,
    )
    (outcome,) = [line for line in parsed if "outcome" in line]
    assert (outcome["outcome"], outcome["job_id"]) == ("backup_succeeded", job_id)
    assert parsed.index(waiting) < parsed.index(outcome)


def test_refused_event_logs_its_outcome_and_no_secret(
    env: dict[str, str], emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client()
    capsys.readouterr()
    body = event()
    headers = {**sign(body, secret=CALLBACK_SECRET), "Function-Execution-Id": "exec-42"}
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 401
    err = capsys.readouterr().err

    (line,) = outcome_lines(err)
    assert OUTCOME_FIELDS - {"trace_id"} <= line.keys()
    assert line["level"] == "WARNING"
    assert line["message"] == "event refused"
    assert line["outcome"] == "unauthorized"
    assert line["status"] == 401
    assert line["source"] == "generic"
    assert line["trigger_id"] is None and line["job_id"] is None  # not known: present, null
    assert line["correlation_id"] == "exec-42"
    assert "signature" in line["reason"]
    for secret in (WEBHOOK_SECRET, CALLBACK_SECRET, env["OS_PASSWORD"]):
        assert secret not in err
    assert headers["webhook-signature"] not in err
    assert emu.requests() == []


def test_configuration_error_is_a_json_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OS_PASSWORD")
    client = make_client()
    capsys.readouterr()
    body = event()
    response = client.post("/", data=body, headers=sign(body))
    assert response.status_code == 500
    (line,) = outcome_lines(capsys.readouterr().err)
    assert line["level"] == "ERROR"
    assert line["outcome"] == "configuration_error"
    assert "OS_PASSWORD" in line["reason"]


def test_log_level_hides_info_lines(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    client = make_client()
    capsys.readouterr()
    body = event()
    assert client.post("/", data=body, headers=sign(body)).status_code == 202
    assert lines(capsys.readouterr().err) == []
    assert (
        client.post("/", data=body, headers={"Content-Type": "application/json"}).status_code == 401
    )
    (line,) = outcome_lines(capsys.readouterr().err)
    assert line["outcome"] == "unauthorized"


def test_lines_stay_json_and_complete_under_log_execution_id(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    make_client()  # the loggers exist before the framework reconfigures logging (a second load)
    monkeypatch.setenv("LOG_EXECUTION_ID", "true")
    client = make_client()
    capsys.readouterr()
    body = event()
    headers = {**sign(body), "Function-Execution-Id": "exec-0815"}
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 202
    err = capsys.readouterr().err

    (line,) = outcome_lines(err)  # not lost to the root logger's WARNING level
    assert OUTCOME_FIELDS - {"trace_id"} <= line.keys()
    assert line["outcome"] == "backup_started"
    assert line["correlation_id"] == "exec-0815"
    # the framework merged its label into our object rather than wrapping our line as text
    assert line["logging.googleapis.com/labels"] == {"execution_id": "exec-0815"}
    assert "message" in line and not line["message"].startswith("{")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-CFF-Request-Id": "cff-1", "Function-Execution-Id": "ex-1"}, ("cff-1", None)),
        ({"Function-Execution-Id": "ex-1", "X-Request-Id": "rq-1"}, ("ex-1", None)),
        ({"x-request-id": "rq-1"}, ("rq-1", None)),
        ({"traceparent": TRACEPARENT}, (None, TRACE)),
        ({"X-Cloud-Trace-Context": f"{TRACE.upper()}/123;o=1"}, (None, TRACE)),
        ({"traceparent": "garbage", "X-Cloud-Trace-Context": f"{TRACE}"}, (None, TRACE)),
        ({"Function-Execution-Id": "has space\nand newline"}, (None, None)),
        ({"X-CFF-Request-Id": "x" * 200, "Function-Execution-Id": "ex-2"}, ("ex-2", None)),
        ({}, (None, None)),
    ],
)
def test_request_ids(headers: dict[str, str], expected: tuple[str | None, str | None]) -> None:
    assert logs.request_ids(headers) == expected


def test_redacting_filter_removes_secret_values(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logs.configure("DEBUG", ["s3cr3t-value"])
    logger.getChild("test").info(
        "token %s", "s3cr3t-value", extra={"fields": {"detail": "x s3cr3t-value y"}}
    )
    (line,) = lines(capsys.readouterr().err)
    assert line["message"] == "token [redacted]"
    assert line["detail"] == "x [redacted] y"
    logs.configure("INFO")


def test_unknown_log_level_falls_back_to_info() -> None:
    assert logs.configure("LOUD").level == logging.INFO
    assert logs.configure("debug").level == logging.DEBUG
    logs.configure("INFO")
