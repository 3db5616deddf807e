"""The emulator's fault injection, driven over HTTP as the tests and users drive it."""

from __future__ import annotations

import time

import httpx
import pytest

from emulator import Emulator
from helpers import INSTANCE, PROJECT_ID


def create(emu: Emulator, name: str = "backup-1") -> httpx.Response:
    return httpx.post(
        f"{emu.url}/v3/{PROJECT_ID}/backups/create",
        json={"instance_id": INSTANCE, "name": name},
        headers={"X-Auth-Token": emu.issue_token()},
        timeout=5,
    )


def arm(emu: Emulator, **fault: object) -> httpx.Response:
    return httpx.post(f"{emu.url}/_emulator/faults", json=fault, timeout=5)


def test_injected_error_answers_then_disarms(emu: Emulator) -> None:
    armed = arm(emu, route="create_backup", status=409, error_code="DBS.201205", times=2)
    assert armed.status_code == 201
    answers = [create(emu) for _ in range(3)]
    assert [a.status_code for a in answers] == [409, 409, 201]
    assert answers[0].json() == {"error_code": "DBS.201205", "error_msg": "Injected fault."}
    assert httpx.get(f"{emu.url}/_emulator/faults").json() == {"faults": []}


def test_skip_lets_the_first_requests_through(emu: Emulator) -> None:
    arm(emu, route="create_backup", status=503, skip=1, times=1)
    answers = [create(emu, name=f"backup-{n}").status_code for n in range(2)]
    assert answers == [201, 503]
    assert arm(emu, route="create_backup", skip=-1).status_code == 400


def test_gateway_codes_carry_a_request_id_and_retry_after(emu: Emulator) -> None:
    arm(emu, route="create_backup", status=429, error_code="APIGW.0308", retry_after=3)
    answer = create(emu)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json()["request_id"] == answer.headers["X-Request-Id"]


def test_latency(emu: Emulator) -> None:
    arm(emu, route="*", latency_seconds=0.3)
    started = time.monotonic()
    assert create(emu).status_code == 201
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(("drop", "backups"), [("before", 0), ("after", 1)])
def test_dropped_connection(emu: Emulator, drop: str, backups: int) -> None:
    arm(emu, route="create_backup", drop=drop)
    with pytest.raises(httpx.RemoteProtocolError):
        create(emu)
    listed = httpx.get(
        f"{emu.url}/v3/{PROJECT_ID}/backups",
        headers={"X-Auth-Token": emu.issue_token()},
    ).json()
    assert listed["total_count"] == backups


def test_iam_down_until_cleared(emu: Emulator) -> None:
    arm(emu, route="issue_token", status=503, times=None)
    login: dict[str, object] = {"auth": {}}
    for _ in range(3):
        assert httpx.post(f"{emu.url}/v3/auth/tokens", json=login).status_code == 503
    assert httpx.delete(f"{emu.url}/_emulator/faults").status_code == 200
    assert httpx.post(f"{emu.url}/v3/auth/tokens", json=login).status_code != 503


def test_reset_clears_faults(emu: Emulator) -> None:
    arm(emu, route="create_backup", status=500, times=None)
    emu.reset()
    assert create(emu).status_code == 201


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"route": "nope"}, "route must be one of"),
        ({"route": "create_backup", "status": 99}, "status"),
        ({"route": "create_backup", "drop": "sometimes"}, "drop"),
        ({"route": "create_backup", "latency_seconds": -1}, "latency_seconds"),
        ({"route": "create_backup", "times": 0}, "times"),
        ({"route": "create_backup", "colour": "red"}, "unknown fault fields"),
    ],
)
def test_bad_fault_is_refused(emu: Emulator, fault: dict[str, object], message: str) -> None:
    answer = httpx.post(f"{emu.url}/_emulator/faults", json=fault)
    assert answer.status_code == 400
    assert message in answer.json()["error_msg"]
    assert httpx.get(f"{emu.url}/_emulator/faults").json() == {"faults": []}
