"""Faults, redeliveries and waiting, through the app against the emulator's injected faults.

For every fault: the final answer, how many backups exist afterwards (exactly one, or none),
and that the job ID was reported or the failure logged.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import (
    INSTANCE,
    backups_on,
    creates,
    deliver,
    env_fixture,
    event,
    js,
    make_client,
    sign,
    successful_creates,
)

env = env_fixture(
    DEADLINE_SECONDS="6",
    API_TIMEOUT_SECONDS="0.5",
    CALLBACK_TIMEOUT_SECONDS="0.5",
    CALLBACK_RETRY_SECONDS="1.5",
    POLL_INTERVAL_SECONDS="0.05",
)


def log_lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


RETRYABLE = [
    {"status": 409, "error_code": code, "error_msg": "busy"}
    for code in ("DBS.201205", "DBS.200019", "DBS.200047", "DBS.201015", "DBS.212033")
] + [
    {"status": 400, "error_code": "DBS.201014", "error_msg": "not allowed in this status"},
    {"status": 429, "error_code": "APIGW.0308", "error_msg": "throttled", "retry_after": "0.2"},
    {"status": 500, "error_code": "DBS.108000", "error_msg": "server failure"},
    {"status": 502, "error_code": "APIGW.0103", "error_msg": "bad gateway"},
    {"status": 503},
    {"status": 504},
    {"drop": "before"},
    {"latency_seconds": 1.0, "status": 503},  # slower than API_TIMEOUT_SECONDS: a timeout
]


@pytest.mark.parametrize("fault", RETRYABLE, ids=lambda f: str(f.get("error_code") or f))
def test_retryable_fault_on_create_ends_in_one_backup(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver, fault: dict[str, Any]
) -> None:
    emu.inject("create_backup", times=2, **fault)
    response = deliver(client, event(callback_url=receiver.url))

    assert response.status_code == 202, js(response)
    job_id = js(response)["job_id"]
    assert job_id
    assert len(backups_on(emu)) == 1
    assert receiver.wait_for(1)[0].payload["job_id"] == job_id


@pytest.mark.parametrize("route", ["list_backups", "issue_token"])
def test_retryable_fault_on_lookup_or_iam_is_retried(
    client: FlaskClient, emu: Emulator, route: str
) -> None:
    emu.inject(route, times=2, status=503)
    response = deliver(client, event())
    assert response.status_code == 202, js(response)
    assert len(backups_on(emu)) == 1


def test_answer_lost_after_create_is_found_on_retry(client: FlaskClient, emu: Emulator) -> None:
    emu.inject("create_backup", drop="after")
    response = deliver(client, event())

    assert response.status_code == 200, js(response)
    assert js(response)["created"] is False
    assert js(response)["job_id"] is None  # the API keeps no link from a backup to its job
    (backup,) = backups_on(emu)
    assert js(response)["backup"]["id"] == backup["id"]


def test_iam_down_is_503_and_nothing_is_made(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    emu: Emulator,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEADLINE_SECONDS", "2")
    emu.inject("issue_token", times=None, status=503)
    response = deliver(make_client(), event())

    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert successful_creates(emu) == 0
    emu.clear_faults()
    assert backups_on(emu) == []
    failed = [line for line in log_lines(capfd.readouterr().err) if line.get("status") == 503]
    assert failed and failed[0]["outcome"] == "upstream_unavailable"


def test_api_unreachable_is_503(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("GAUSSDB_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DEADLINE_SECONDS", "1")
    response = deliver(make_client(), event())
    assert response.status_code in (503, 504)
    assert js(response)["error"] == "upstream_unavailable"


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"status": 400, "error_code": "DBS.280277", "error_msg": "Invalid backup name"}, 400),
        ({"status": 403, "error_code": "DBS.200604", "error_msg": "not authorized"}, 502),
        ({"status": 409, "error_code": "DBS.200316", "error_msg": "storage full"}, 409),
    ],
)
def test_permanent_fault_is_not_retried(
    client: FlaskClient, emu: Emulator, fault: dict[str, Any], status: int
) -> None:
    emu.inject("create_backup", **fault)
    response = deliver(client, event())

    assert response.status_code == status
    assert js(response)["error_code"] == fault["error_code"]
    assert len(creates(emu)) == 1
    assert backups_on(emu) == []


# --- redeliveries --------------------------------------------------------------------------


def test_redelivery_answers_the_existing_backup(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    body = event(callback_url=receiver.url)
    first = deliver(client, body)
    second = deliver(client, body)

    assert first.status_code == 202 and second.status_code == 200
    assert js(second)["created"] is False
    assert js(second)["backup"]["id"] == js(first)["backup"]["id"]
    assert len(backups_on(emu)) == 1
    ids = {c.headers["webhook-id"] for c in receiver.wait_for(2)}
    assert len(ids) == 1  # the receiver can dedupe


def test_redelivery_after_completion_still_makes_no_second_backup(
    client: FlaskClient, emu: Emulator
) -> None:
    emu.configure(backup_seconds=0)
    assert deliver(client, event()).status_code == 202
    again = deliver(client, event())
    assert again.status_code == 200
    assert js(again)["backup"]["status"] == "COMPLETED"
    assert len(backups_on(emu)) == 1


def test_same_name_from_another_trigger_is_another_backup(
    client: FlaskClient, emu: Emulator
) -> None:
    emu.configure(backup_seconds=0)
    assert deliver(client, event(id="deploy-1", name="backup-1")).status_code == 202
    response = deliver(client, event(id="deploy-2", name="backup-1"))
    assert response.status_code == 202
    assert [b["name"] for b in backups_on(emu)] == ["backup-1", "backup-1"]


def test_failed_backup_is_made_again_on_redelivery(client: FlaskClient, emu: Emulator) -> None:
    emu.configure(backup_seconds=0)
    emu.put_instance(INSTANCE, fail_backups=True)
    assert deliver(client, event()).status_code == 202
    emu.put_instance(INSTANCE, fail_backups=False)
    again = deliver(client, event())
    assert again.status_code == 202
    assert sorted(b["status"] for b in backups_on(emu)) == ["COMPLETED", "FAILED"]


def test_lookup_reads_every_page(client: FlaskClient, emu: Emulator) -> None:
    emu.configure(backup_seconds=0)
    first = deliver(client, event())
    for number in range(120):  # newer manual backups push ours to the second page
        emu.add_backup(INSTANCE, backup_type="manual", name=f"other-{number:03d}")
    again = deliver(client, event())

    assert again.status_code == 200
    assert js(again)["backup"]["id"] == js(first)["backup"]["id"]
    offsets = [r.query.get("offset") for r in emu.requests() if r.path.endswith("/backups")]
    assert "100" in offsets


def test_redelivery_brings_a_lost_callback_through(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, receiver: CallbackReceiver
) -> None:
    monkeypatch.setenv("CALLBACK_RETRY_SECONDS", "0")
    client = make_client()
    body = event(callback_url=receiver.url)
    receiver.next_statuses = [500]
    first = deliver(client, body)
    assert js(first)["callbacks"]["backup.started"]["delivered"] is False

    second = deliver(client, body)
    assert js(second)["callbacks"]["backup.started"]["delivered"] is True
    lost, recovered = receiver.wait_for(2)
    assert lost.headers["webhook-id"] == recovered.headers["webhook-id"]
    assert recovered.payload["backup"]["id"] == js(first)["backup"]["id"]


def test_concurrent_deliveries_make_one_backup_per_trigger(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, receiver: CallbackReceiver
) -> None:
    monkeypatch.setenv("DEADLINE_SECONDS", "20")
    monkeypatch.setenv("API_TIMEOUT_SECONDS", "10")
    emu.configure(backup_seconds=60)  # all BUILDING: every loser meets the busy answer
    client = make_client()
    instances = list(emu.config.instances)[:10]
    bodies = [
        event(id=f"deploy-{n}", instance_id=instance, callback_url=f"{receiver.url}/{n}")
        for n, instance in enumerate(instances)
    ]
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(50)

    def send(body: bytes) -> None:
        start.wait()
        response = client.post("/", data=body, headers=sign(body))
        with lock:
            answers.append((response.status_code, js(response)))

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(status for status, _ in answers) == [200] * 40 + [202] * 10, answers
    job_ids = {body["job_id"] for status, body in answers if status == 202}
    assert len(job_ids) == 10
    assert sum(len(backups_on(emu, i)) for i in instances) == 10
    delivered = receiver.wait_for(50, timeout=20)
    assert {c.payload["job_id"] for c in delivered} - {None} == job_ids
    for n in range(10):  # one webhook-id per trigger, whoever sent it
        assert len({c.headers["webhook-id"] for c in delivered if c.path == f"/{n}"}) == 1


# --- callbacks -----------------------------------------------------------------------------


def test_callback_retried_until_delivered(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    receiver.next_statuses = [500, 503]
    response = deliver(client, event(callback_url=receiver.url))
    assert js(response)["callbacks"]["backup.started"] == {"delivered": True}
    attempts = receiver.wait_for(3)
    assert len({c.headers["webhook-id"] for c in attempts}) == 1


def test_callback_410_stops_at_once(
    client: FlaskClient, receiver: CallbackReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 410
    response = deliver(client, event(callback_url=receiver.url))
    assert response.status_code == 202
    assert js(response)["callbacks"]["backup.started"] == {"delivered": False}
    assert len(receiver.received) == 1
    failed = [x for x in log_lines(capfd.readouterr().err) if x["message"].startswith("callback")]
    assert failed[-1]["outcome"] == "callback_failed"
    assert failed[-1]["callback_status"] == 410  # the receiver's answer: in the log only
    assert failed[-1]["job_id"] == js(response)["job_id"]


def test_slow_callback_receiver_times_out_and_is_logged(
    client: FlaskClient, receiver: CallbackReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    receiver.delay_seconds = 1.0
    response = deliver(client, event(callback_url=receiver.url))
    assert response.status_code == 202
    assert js(response)["job_id"]
    callback = js(response)["callbacks"]["backup.started"]
    assert callback == {"delivered": False}
    lines = [x for x in log_lines(capfd.readouterr().err) if x.get("outcome") == "callback_failed"]
    assert lines and lines[-1]["job_id"] == js(response)["job_id"]
    assert "timed out" in lines[-1]["error"]


def test_callback_receiver_down_keeps_the_job_id(
    client: FlaskClient, emu: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    response = deliver(client, event(callback_url=f"http://127.0.0.1:{port}/"))
    assert response.status_code == 202
    assert js(response)["job_id"]
    assert js(response)["callbacks"]["backup.started"] == {"delivered": False}
    lines = [x for x in log_lines(capfd.readouterr().err) if x.get("outcome") == "callback_failed"]
    assert "unreachable" in lines[-1]["error"]
    assert len(backups_on(emu)) == 1


# --- waiting -------------------------------------------------------------------------------


def test_wait_until_completed(
    client: FlaskClient, emu: Emulator, receiver: CallbackReceiver
) -> None:
    emu.configure(backup_seconds=0.3)
    response = deliver(client, event(wait=True, callback_url=receiver.url))

    assert response.status_code == 200, js(response)
    assert js(response)["status"] == "SUCCEEDED"
    assert js(response)["backup"]["status"] == "COMPLETED"
    assert "Location" not in response.headers  # 200: it has ended, nothing to follow
    started, completed = receiver.wait_for(2)
    assert started.payload["type"] == "backup.started"
    assert completed.payload["type"] == "backup.completed"
    assert completed.payload["job_id"] == js(response)["job_id"]
    assert completed.headers["webhook-id"] != started.headers["webhook-id"]


def test_wait_until_failed(client: FlaskClient, emu: Emulator, receiver: CallbackReceiver) -> None:
    emu.configure(backup_seconds=0.2)
    emu.put_instance(INSTANCE, fail_backups=True)
    response = deliver(client, event(wait=True, callback_url=receiver.url))

    assert response.status_code == 502
    assert js(response)["error"] == "backup_failed"
    assert js(response)["job_id"]
    assert [c.payload["type"] for c in receiver.wait_for(2)] == ["backup.started", "backup.failed"]


def test_wait_times_out(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator, receiver: CallbackReceiver
) -> None:
    monkeypatch.setenv("WAIT_TIMEOUT_SECONDS", "0.4")
    emu.configure(backup_seconds=30)
    response = deliver(make_client(), event(wait=True, callback_url=receiver.url))

    assert response.status_code == 504
    # the backup still builds: RUNNING, and the answer says the wait ran out
    assert (js(response)["status"], js(response)["error"]) == ("RUNNING", "backup_timed_out")
    assert js(response)["backup"]["status"] == "BUILDING"
    kinds = [c.payload["type"] for c in receiver.wait_for(2)]
    assert kinds == ["backup.started", "backup.timed_out"]


def test_wait_for_completion_setting_and_event_override(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, emu: Emulator
) -> None:
    monkeypatch.setenv("WAIT_FOR_COMPLETION", "true")
    emu.configure(backup_seconds=0.2)
    client = make_client()
    waited = deliver(client, event(id="a", instance_id=emu.config.instances[1]))
    not_waited = deliver(client, event(id="b", instance_id=emu.config.instances[2], wait=False))
    assert waited.status_code == 200 and js(waited)["status"] == "SUCCEEDED"
    assert not_waited.status_code == 202 and js(not_waited)["status"] == "RUNNING"


# --- status endpoint -----------------------------------------------------------------------


def get_signed(client: FlaskClient, path: str) -> Any:
    return client.get(path, headers=sign(b""))


def test_status_of_backup_and_job(client: FlaskClient, emu: Emulator) -> None:
    emu.configure(backup_seconds=0.3)
    created = js(deliver(client, event()))
    backup = get_signed(client, f"/backups/{created['backup']['id']}")
    job = get_signed(client, f"/jobs/{created['job_id']}")
    assert js(backup)["status"] == "RUNNING" and js(backup)["backup"]["status"] == "BUILDING"
    assert js(job)["status"] == "RUNNING" and js(job)["job"]["status"] == "Running"

    emu.configure(backup_seconds=0)
    deadline = 50
    while js(get_signed(client, f"/jobs/{created['job_id']}"))["status"] == "RUNNING":
        deadline -= 1
        assert deadline > 0
        threading.Event().wait(0.05)
    assert js(get_signed(client, f"/backups/{created['backup']['id']}"))["status"] == "SUCCEEDED"


def test_status_of_failed_backup(client: FlaskClient, emu: Emulator) -> None:
    emu.configure(backup_seconds=0)
    emu.put_instance(INSTANCE, fail_backups=True)
    created = js(deliver(client, event()))
    assert js(get_signed(client, f"/backups/{created['backup']['id']}"))["status"] == "FAILED"
    assert js(get_signed(client, f"/jobs/{created['job_id']}"))["status"] == "FAILED"


@pytest.mark.parametrize(
    "path", ["/backups/0123456789abcdef0123456789abcdefbr07", "/jobs/5d5f3b8e-unknown"]
)
def test_status_of_unknown_is_404(client: FlaskClient, path: str) -> None:
    response = get_signed(client, path)
    assert response.status_code == 404
    assert js(response)["error"] == "not_found"


def test_status_needs_authentication(client: FlaskClient, emu: Emulator) -> None:
    response = client.get("/backups/whatever")
    assert response.status_code == 401
    assert emu.requests() == []


@pytest.mark.parametrize("path", ["/", "/backups", "/backups/a/b", "/other/x"])
def test_unknown_get_paths_are_404(client: FlaskClient, emu: Emulator, path: str) -> None:
    assert client.get(path, headers=sign(b"")).status_code == 404
    assert emu.requests() == []
