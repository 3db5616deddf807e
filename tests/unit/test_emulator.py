"""The emulator over real sockets: IAM, gateway auth, TaurusDB rules, state machines, admin, CLI."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "619d3e78f61b4be68bc5aa0b59edcf7b"
OTHER_PROJECT = "0123456789abcdef0123456789abcdef"
INSTANCE = "07033b125fd94a8a96896f8bcfee6ddain07"
OTHER_INSTANCE = f"{1:032x}in07"
UNKNOWN_INSTANCE = "ffffffffffffffffffffffffffffffffin07"
PASSWORD = "demo-password"
DOMAIN = "OTC-EU-DE-00000000001000000001"
BUILD_SECONDS = 0.2
API_TIME = "%Y-%m-%dT%H:%M:%S%z"


# --- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def running() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(port=0, backup_seconds=BUILD_SECONDS)) as emu:
        yield emu


@pytest.fixture
def emu(running: Emulator) -> Emulator:
    """This module's emulator, with clean state and log for every test."""
    running.reset()
    return running


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    """No credentials; for IAM, admin and auth-failure calls."""
    with httpx.Client(base_url=emu.url, timeout=5.0) as http:
        yield http


@pytest.fixture
def token(client: httpx.Client) -> str:
    response = client.post("/v3/auth/tokens", json=login_body())
    assert response.status_code == 201
    return response.headers["X-Subject-Token"]


@pytest.fixture
def api(emu: Emulator, token: str) -> Iterator[httpx.Client]:
    """Authenticated TaurusDB client; paths are relative to /v3/{project_id}."""
    with httpx.Client(
        base_url=f"{emu.url}/v3/{PROJECT}", headers={"X-Auth-Token": token}, timeout=5.0
    ) as http:
        yield http


def login_body(
    *,
    user: str = "demo",
    password: str = PASSWORD,
    domain: str = DOMAIN,
    scope: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": domain}}
                },
            },
            "scope": scope if scope is not None else {"project": {"name": "eu-de"}},
        }
    }


def create(api: httpx.Client, **fields: Any) -> httpx.Response:
    body: dict[str, Any] = {"instance_id": INSTANCE, "name": "backup-1"}
    body.update(fields)
    return api.post("/backups/create", json={k: v for k, v in body.items() if v is not None})


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error_code"] == code
    if code.startswith("APIGW."):
        assert body["request_id"] == response.headers["X-Request-Id"]
    else:
        assert set(body) == {"error_code", "error_msg"}
    return body


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def backup_status(api: httpx.Client, backup_id: str) -> str:
    backups = api.get("/backups", params={"backup_id": backup_id}).json()["backups"]
    return str(backups[0]["status"])


# --- IAM --------------------------------------------------------------------------------------
def test_token_is_issued_with_project_and_catalog(emu: Emulator, client: httpx.Client) -> None:
    response = client.post("/v3/auth/tokens", json=login_body())

    assert response.status_code == 201
    assert response.headers["X-Subject-Token"]
    token = response.json()["token"]
    issued = datetime.strptime(token["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(token["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", token["expires_at"])
    assert expires - issued == timedelta(hours=24)
    assert token["methods"] == ["password"]
    assert token["project"]["id"] == PROJECT
    assert token["project"]["name"] == "eu-de"
    assert token["user"]["name"] == "demo"
    assert token["user"]["domain"]["name"] == DOMAIN
    urls = {entry["type"]: entry["endpoints"][0]["url"] for entry in token["catalog"]}
    assert urls["gaussdb-mysql"] == emu.url


def test_token_scoped_by_project_id(client: httpx.Client) -> None:
    body = login_body(scope={"project": {"id": PROJECT}})
    response = client.post("/v3/auth/tokens", json=body)
    assert response.status_code == 201
    assert response.json()["token"]["project"]["id"] == PROJECT


def test_nocatalog_omits_catalog(client: httpx.Client) -> None:
    response = client.post("/v3/auth/tokens", params={"nocatalog": "true"}, json=login_body())
    assert response.status_code == 201
    assert "catalog" not in response.json()["token"]


@pytest.mark.parametrize(
    "body",
    [
        login_body(password="wrong"),
        login_body(user="someone-else"),
        login_body(domain="OTC-EU-DE-00000000009999999999"),
    ],
    ids=["password", "user", "domain"],
)
def test_wrong_credentials_401(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v3/auth/tokens", json=body)
    assert response.status_code == 401
    assert "X-Subject-Token" not in response.headers
    assert response.json() == {
        "error": {
            "code": 401,
            "message": "The username or password is wrong.",
            "title": "Unauthorized",
        }
    }


def test_unknown_project_401(client: httpx.Client) -> None:
    response = client.post("/v3/auth/tokens", json=login_body(scope={"project": {"name": "eu-nl"}}))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"auth": {}}', b'{"auth": {"identity": {"methods": ["token"]}}}'],
)
def test_malformed_iam_body_400(client: httpx.Client, content: bytes) -> None:
    response = client.post("/v3/auth/tokens", content=content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["title"] == "Bad Request"


# --- gateway authentication -------------------------------------------------------------------
def test_missing_token_401(client: httpx.Client) -> None:
    body = assert_error(client.get(f"/v3/{PROJECT}/backups"), 401, "APIGW.0301")
    assert body["error_msg"].endswith("x-auth-token not found")


def test_unknown_token_401(client: httpx.Client) -> None:
    response = client.get(f"/v3/{PROJECT}/backups", headers={"X-Auth-Token": "MIIT-bogus"})
    assert assert_error(response, 401, "APIGW.0301")["error_msg"].endswith("decrypt token fail")


def test_revoked_token_401(client: httpx.Client, api: httpx.Client) -> None:
    assert api.get("/backups").status_code == 200
    assert client.post("/_emulator/revoke-tokens").status_code == 200
    assert_error(api.get("/backups"), 401, "APIGW.0301")


def test_expired_token_401(client: httpx.Client) -> None:
    config = client.post("/_emulator/config", json={"token_ttl_seconds": 0.01})
    assert config.json()["config"]["token_ttl_seconds"] == 0.01
    token = client.post("/v3/auth/tokens", json=login_body()).headers["X-Subject-Token"]
    time.sleep(0.02)
    response = client.get(f"/v3/{PROJECT}/backups", headers={"X-Auth-Token": token})
    body = assert_error(response, 401, "APIGW.0307")
    assert body["error_msg"] == "The token must be updated."


def test_token_of_other_project_401(client: httpx.Client, token: str) -> None:
    response = client.get(f"/v3/{OTHER_PROJECT}/backups", headers={"X-Auth-Token": token})
    assert_error(response, 401, "APIGW.0307")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v3/{PROJECT}/nothing"),
        ("PUT", f"/v3/{PROJECT}/backups/create"),
        ("GET", f"/v3/{PROJECT}/backups/create"),
        ("GET", "/v3/auth/tokens"),
        ("POST", f"/mysql/v3/{PROJECT}/backups/create"),
        ("GET", "/"),
    ],
)
def test_unknown_route_404(api: httpx.Client, emu: Emulator, method: str, path: str) -> None:
    response = api.request(method, f"{emu.url}{path}")
    body = assert_error(response, 404, "APIGW.0101")
    assert body["error_msg"] == (
        "The API does not exist or has not been published in the environment."
    )


# --- create backup ----------------------------------------------------------------------------
def test_create_backup_201(api: httpx.Client) -> None:
    response = create(api, description="Manual backup")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"backup", "job_id"}
    backup = body["backup"]
    assert set(backup) == {
        "id", "name", "description", "begin_time", "status", "type", "instance_id"
    }  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{32}br07", backup["id"])
    assert backup["name"] == "backup-1"
    assert backup["description"] == "Manual backup"
    assert backup["status"] == "BUILDING"
    assert backup["type"] == "manual"
    assert backup["instance_id"] == INSTANCE
    begin = datetime.strptime(backup["begin_time"], API_TIME)
    assert abs(datetime.now(UTC) - begin) < timedelta(minutes=1)
    assert str(uuid.UUID(body["job_id"])) == body["job_id"]


def test_create_without_description_returns_empty(api: httpx.Client) -> None:
    assert create(api).json()["backup"]["description"] == ""


def test_duplicate_names_are_allowed(api: httpx.Client) -> None:
    assert create(api, name="same-name").status_code == 201
    assert create(api, instance_id=OTHER_INSTANCE, name="same-name").status_code == 201


@pytest.mark.parametrize("name", ["abcd", "a" * 64, "A1_-", "backup_2024-01-01"])
def test_valid_names(api: httpx.Client, name: str) -> None:
    assert create(api, name=name).status_code == 201


@pytest.mark.parametrize("description", ["", "x" * 256, "Pre-deploy backup (release 1.2; ok?)"])
def test_valid_descriptions(api: httpx.Client, description: str) -> None:
    assert create(api, description=description).status_code == 201


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"instance_id": None}, "DBS.280404"),
        ({"instance_id": "not-an-instance"}, "DBS.280404"),
        ({"instance_id": INSTANCE.upper()}, "DBS.280404"),
        ({"instance_id": INSTANCE[:-1]}, "DBS.280404"),
        ({"instance_id": 42}, "DBS.280404"),
        ({"name": None}, "DBS.280277"),
        ({"name": "abc"}, "DBS.280277"),
        ({"name": "a" * 65}, "DBS.280277"),
        ({"name": "1backup"}, "DBS.280277"),
        ({"name": "-backup"}, "DBS.280277"),
        ({"name": "back up"}, "DBS.280277"),
        ({"name": "backup.1"}, "DBS.280277"),
        ({"name": "backup-ü"}, "DBS.280277"),
        ({"description": "x" * 257}, "DBS.280127"),
        ({"description": 7}, "DBS.280127"),
        *[({"description": f"a{ch}b"}, "DBS.280127") for ch in ">!<\"&'=\r\n"],
        # Order of the checks: instance_id, then name, then description.
        ({"instance_id": "bad", "name": "x"}, "DBS.280404"),
        ({"name": "x", "description": "<"}, "DBS.280277"),
    ],
)
def test_create_validation_400(api: httpx.Client, fields: dict[str, Any], code: str) -> None:
    assert_error(create(api, **fields), 400, code)


def test_create_unknown_instance_404(api: httpx.Client) -> None:
    assert_error(create(api, instance_id=UNKNOWN_INSTANCE), 404, "DBS.200002")


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "DBS.200006"), (b"not json", "DBS.200001"), (b"[1, 2]", "DBS.200001")],
)
def test_create_body_not_an_object_400(api: httpx.Client, content: bytes, code: str) -> None:
    response = api.post(
        "/backups/create", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, code)


def test_second_backup_while_building_409(emu: Emulator, api: httpx.Client) -> None:
    emu.configure(backup_seconds=30)  # stays BUILDING for the whole test
    assert create(api).status_code == 201
    body = assert_error(create(api, name="backup-2"), 409, "DBS.201205")
    assert body["error_msg"] == "Backup is in progress, please wait."
    assert create(api, instance_id=OTHER_INSTANCE).status_code == 201


def test_concurrent_creates_start_one_backup(emu: Emulator) -> None:
    emu.configure(backup_seconds=30)
    headers = {"X-Auth-Token": emu.issue_token()}
    body = {"instance_id": INSTANCE, "name": "racer"}

    def attempt(_: int) -> int:
        with httpx.Client(base_url=emu.url, headers=headers, timeout=5.0) as http:
            return http.post(f"/v3/{PROJECT}/backups/create", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(attempt, range(16)))

    assert statuses == [201] + [409] * 15


@pytest.mark.parametrize(
    ("status", "http_status", "code"),
    [
        ("FROZEN", 400, "DBS.280449"),
        ("MODIFYING", 409, "DBS.200019"),
        ("REBOOTING", 409, "DBS.200019"),
    ],
)
def test_instance_not_active(
    client: httpx.Client, api: httpx.Client, status: str, http_status: int, code: str
) -> None:
    response = client.post("/_emulator/instances", json={"id": INSTANCE, "status": status})
    assert response.status_code == 200
    assert_error(create(api), http_status, code)


# --- state machines ---------------------------------------------------------------------------
def test_backup_and_job_complete_after_backup_seconds(
    client: httpx.Client, api: httpx.Client
) -> None:
    client.post("/_emulator/config", json={"backup_seconds": 0.5})  # room to observe BUILDING
    created = create(api).json()
    backup_id, job_id = created["backup"]["id"], created["job_id"]

    assert api.get(f"/instances/{INSTANCE}").json()["instance"]["status"] == "BACKING UP"
    job = api.get("/jobs", params={"id": job_id}).json()["job"]
    assert job["status"] == "Running"
    assert re.fullmatch(r"\d{1,2}%", job["process"])
    assert backup_status(api, backup_id) == "BUILDING"

    wait_until(lambda: backup_status(api, backup_id) != "BUILDING")

    backup = api.get("/backups", params={"backup_id": backup_id}).json()["backups"][0]
    assert backup["status"] == "COMPLETED"
    begin = datetime.strptime(backup["begin_time"], API_TIME)
    assert datetime.strptime(backup["end_time"], API_TIME) >= begin
    assert backup["take_up_time"] >= 0
    assert backup["size"] > 0
    assert backup["datastore"] == {"type": "gaussdb-mysql", "version": "8.0"}
    job = api.get("/jobs", params={"id": job_id}).json()["job"]
    assert job["status"] == "Completed"
    assert job["process"] == ""
    assert datetime.strptime(job["ended"], API_TIME) >= datetime.strptime(job["created"], API_TIME)
    assert job["entities"] == {"backup_id": backup_id}
    assert job["instance"]["id"] == INSTANCE
    assert api.get(f"/instances/{INSTANCE}").json()["instance"]["status"] == "ACTIVE"
    assert create(api, name="backup-2").status_code == 201


def test_failing_backups(client: httpx.Client, api: httpx.Client) -> None:
    response = client.post("/_emulator/instances", json={"id": INSTANCE, "fail_backups": True})
    assert response.status_code == 200
    created = create(api).json()
    backup_id = created["backup"]["id"]

    wait_until(lambda: backup_status(api, backup_id) != "BUILDING")

    assert backup_status(api, backup_id) == "FAILED"
    job = api.get("/jobs", params={"id": created["job_id"]}).json()["job"]
    assert job["status"] == "Failed"
    assert job["fail_reason"]
    assert api.get(f"/instances/{INSTANCE}").json()["instance"]["status"] == "ACTIVE"


def test_failing_backups_programmatically(emu: Emulator, api: httpx.Client) -> None:
    emu.put_instance(OTHER_INSTANCE, fail_backups=True)
    backup_id = create(api, instance_id=OTHER_INSTANCE).json()["backup"]["id"]
    wait_until(lambda: backup_status(api, backup_id) == "FAILED")


# --- list backups -----------------------------------------------------------------------------
def seed_history(emu: Emulator) -> list[str]:
    """Three automated backups on 1, 2 and 3 January 2024 (oldest first)."""
    return [
        emu.add_backup(INSTANCE, begin_time=datetime(2024, 1, day, 3, tzinfo=UTC))
        for day in (1, 2, 3)
    ]


def test_list_filters_and_order(emu: Emulator, api: httpx.Client) -> None:
    autos = seed_history(emu)
    first = create(api, name="manual-a").json()["backup"]["id"]
    second = create(api, instance_id=OTHER_INSTANCE, name="manual-b").json()["backup"]["id"]

    everything = api.get("/backups").json()
    assert everything["total_count"] == 5
    ids = [b["id"] for b in everything["backups"]]
    assert set(ids[:2]) == {first, second}
    assert ids[2:] == autos[::-1]  # newest first
    for backup in everything["backups"]:
        assert set(backup) == {
            "id", "name", "begin_time", "end_time", "status", "take_up_time", "type", "size",
            "datastore", "instance_id", "description",
        }  # fmt: skip

    def ids_for(**params: str) -> list[str]:
        return [b["id"] for b in api.get("/backups", params=params).json()["backups"]]

    assert set(ids_for(instance_id=INSTANCE)) == {first, *autos}
    assert ids_for(instance_id=OTHER_INSTANCE) == [second]
    assert ids_for(instance_id=UNKNOWN_INSTANCE) == []
    assert ids_for(backup_id=autos[1]) == [autos[1]]
    assert ids_for(backup_type="auto") == autos[::-1]
    assert set(ids_for(backup_type="manual")) == {first, second}
    window = {"begin_time": "2024-01-02T00:00:00+0000", "end_time": "2024-01-03T00:00:00+0000"}
    assert ids_for(**window) == [autos[1]]
    assert ids_for(begin_time="2024-01-02T05:00:01+0200") == ids[:3]  # 03:00:01 UTC


def test_list_paging(emu: Emulator, api: httpx.Client) -> None:
    autos = seed_history(emu)[::-1]

    page = api.get("/backups", params={"offset": 1, "limit": 1}).json()
    assert page["total_count"] == 3
    assert [b["id"] for b in page["backups"]] == [autos[1]]
    rest = api.get("/backups", params={"offset": 1, "limit": 100}).json()
    assert [b["id"] for b in rest["backups"]] == autos[1:]
    beyond = api.get("/backups", params={"offset": 10}).json()
    assert beyond == {"backups": [], "total_count": 3}


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
def test_list_limit_invalid_400(api: httpx.Client, limit: str) -> None:
    assert_error(api.get("/backups", params={"limit": limit}), 400, "DBS.280439")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"backup_type": "full"}, "DBS.200001"),
        ({"offset": "-1"}, "DBS.200001"),
        ({"begin_time": "2024-01-01"}, "DBS.200001"),
        (
            {"begin_time": "2024-01-02T00:00:00+0000", "end_time": "2024-01-01T00:00:00+0000"},
            "DBS.200001",
        ),
        ({"instance_id": "nope"}, "DBS.280404"),
    ],
)
def test_list_bad_query_400(api: httpx.Client, params: dict[str, str], code: str) -> None:
    assert_error(api.get("/backups", params=params), 400, code)


def test_list_time_filter_with_a_raw_plus_is_refused(api: httpx.Client) -> None:
    # the documented example leaves "+" raw; a query decodes it to a space: not the format
    assert_error(api.get("/backups?begin_time=2024-01-02T00:00:00+0000"), 400, "DBS.200001")
    assert api.get("/backups?begin_time=2024-01-02T00:00:00%2B0000").status_code == 200


def test_many_backups_seeded_in_one_step(
    emu: Emulator, client: httpx.Client, api: httpx.Client
) -> None:
    seeded = client.post(
        "/_emulator/backups",
        json={
            "instance_id": INSTANCE,
            "type": "manual",
            "count": 10_000,
            "begin_time": "2024-01-31T00:00:00+0000",
            "spacing_seconds": 60,
        },
    )
    assert seeded.status_code == 201
    assert seeded.json()["count"] == 10_000 and len(set(seeded.json()["ids"])) == 10_000
    page = api.get("/backups", params={"backup_type": "manual", "limit": 2}).json()
    assert page["total_count"] == 10_000
    times = [b["begin_time"] for b in page["backups"]]
    assert times == ["2024-01-31T00:00:00+0000", "2024-01-30T23:59:00+0000"]
    window = {"begin_time": "2024-01-30T23:00:00+0000", "end_time": "2024-02-01T00:00:00+0000"}
    assert api.get("/backups", params=window).json()["total_count"] == 61


def test_an_api_that_ignores_the_time_filter(
    emu: Emulator, client: httpx.Client, api: httpx.Client
) -> None:
    seed_history(emu)
    window = {"begin_time": "2024-01-02T00:00:00+0000", "end_time": "2024-01-03T00:00:00+0000"}
    assert api.get("/backups", params=window).json()["total_count"] == 1
    client.post("/_emulator/config", json={"ignore_time_filters": True})

    assert api.get("/backups", params=window).json()["total_count"] == 3
    assert_error(api.get("/backups", params={"begin_time": "2024-01-02"}), 400, "DBS.200001")


def test_the_clouds_clock_can_run_behind(
    emu: Emulator, client: httpx.Client, api: httpx.Client
) -> None:
    config = client.post("/_emulator/config", json={"clock_offset_seconds": -3600})
    assert config.json()["config"]["clock_offset_seconds"] == -3600
    made = create(api).json()["backup"]["begin_time"]
    lag = datetime.now(UTC) - datetime.strptime(made, API_TIME)
    assert timedelta(minutes=59) < lag < timedelta(minutes=61)


# --- delete backup ----------------------------------------------------------------------------
def test_delete_completed_manual_backup(api: httpx.Client) -> None:
    backup_id = create(api, name="to-delete").json()["backup"]["id"]
    wait_until(lambda: backup_status(api, backup_id) == "COMPLETED")

    response = api.delete(f"/backups/{backup_id}")

    assert response.status_code == 200
    assert response.json() == {"backup_id": backup_id, "backup_name": "to-delete"}
    assert api.get("/backups", params={"backup_id": backup_id}).json()["total_count"] == 0
    assert_error(api.delete(f"/backups/{backup_id}"), 404, "DBS.201010")


def test_delete_unknown_404(api: httpx.Client) -> None:
    assert_error(api.delete(f"/backups/{uuid.uuid4().hex}br07"), 404, "DBS.201010")


def test_delete_building_400(emu: Emulator, api: httpx.Client) -> None:
    emu.configure(backup_seconds=30)
    backup_id = create(api).json()["backup"]["id"]
    assert_error(api.delete(f"/backups/{backup_id}"), 400, "DBS.201208")


def test_delete_automated_400(client: httpx.Client, api: httpx.Client) -> None:
    seeded = client.post("/_emulator/backups", json={"instance_id": INSTANCE, "type": "auto"})
    assert seeded.status_code == 201
    backup = seeded.json()["backup"]
    assert backup["type"] == "auto"
    assert backup["status"] == "COMPLETED"
    assert_error(api.delete(f"/backups/{backup['id']}"), 400, "DBS.201208")
    assert api.get("/backups", params={"backup_id": backup["id"]}).json()["total_count"] == 1


# --- jobs -------------------------------------------------------------------------------------
def test_job_not_yet_visible_400(client: httpx.Client, api: httpx.Client) -> None:
    client.post("/_emulator/config", json={"job_visible_after_seconds": 0.15})
    job_id = create(api).json()["job_id"]

    body = assert_error(api.get("/jobs", params={"id": job_id}), 400, "DBS.200543")
    assert body["error_msg"] == "The job does not exist."
    wait_until(lambda: api.get("/jobs", params={"id": job_id}).status_code == 200)


def test_job_unknown_and_missing_id_400(api: httpx.Client) -> None:
    assert_error(api.get("/jobs", params={"id": str(uuid.uuid4())}), 400, "DBS.200543")
    assert_error(api.get("/jobs"), 400, "DBS.200001")


# --- instances --------------------------------------------------------------------------------
def test_instance_details(api: httpx.Client) -> None:
    response = api.get(f"/instances/{INSTANCE}")
    assert response.status_code == 200
    instance = response.json()["instance"]
    assert instance["id"] == INSTANCE
    assert instance["project_id"] == PROJECT
    assert instance["status"] == "ACTIVE"
    assert instance["type"] == "Cluster"
    assert instance["datastore"] == {"type": "gaussdb-mysql", "version": "8.0"}
    assert instance["time_zone"] == "UTC+00:00"
    assert instance["nodes"]
    datetime.strptime(instance["created"], API_TIME)


def test_instance_malformed_and_unknown(api: httpx.Client) -> None:
    assert_error(api.get("/instances/not-an-id"), 400, "DBS.280404")
    assert_error(api.get(f"/instances/{UNKNOWN_INSTANCE}"), 404, "DBS.200002")


def test_admin_adds_instance(client: httpx.Client, api: httpx.Client) -> None:
    new_id = f"{0xABC:032x}in07"
    assert api.get(f"/instances/{new_id}").status_code == 404
    response = client.post("/_emulator/instances", json={"id": new_id, "name": "staging"})
    assert response.status_code == 201
    assert api.get(f"/instances/{new_id}").json()["instance"]["name"] == "staging"
    assert create(api, instance_id=new_id).status_code == 201


# --- request log, headers, language, admin ----------------------------------------------------
def test_request_log_records_and_redacts(
    emu: Emulator, client: httpx.Client, api: httpx.Client, token: str
) -> None:
    api.headers["Authorization"] = "Bearer top-secret"
    api.headers["X-Security-Token"] = "security-secret"
    create(api, description="why")
    api.get("/backups", params={"limit": "5"})

    log = client.get("/_emulator/requests").json()["requests"]

    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/v3/auth/tokens", 201),
        ("POST", f"/v3/{PROJECT}/backups/create", 201),
        ("GET", f"/v3/{PROJECT}/backups", 200),
    ]
    login, created, listed = log
    assert login["body"]["auth"]["identity"]["password"]["user"] == {
        "name": "demo",
        "password": "<redacted>",
        "domain": {"name": DOMAIN},
    }
    assert created["body"] == {"instance_id": INSTANCE, "name": "backup-1", "description": "why"}
    assert created["headers"]["x-auth-token"] == "<redacted>"
    assert created["headers"]["authorization"] == "<redacted>"
    assert created["headers"]["x-security-token"] == "<redacted>"
    assert listed["query"] == {"limit": "5"}
    assert listed["body"] is None
    dumped = json.dumps(log) + repr(emu.requests())
    for secret in (token, PASSWORD, "top-secret", "security-secret"):
        assert secret not in dumped
    assert [r.to_dict() for r in emu.requests()] == log


def test_every_response_is_json_with_request_id(client: httpx.Client, api: httpx.Client) -> None:
    responses = [
        client.post("/v3/auth/tokens", json=login_body()),
        client.post("/v3/auth/tokens", json=login_body(password="wrong")),
        create(api),
        api.get("/nothing"),
        client.get("/_emulator/requests"),
    ]
    ids = [r.headers["X-Request-Id"] for r in responses]
    for response, request_id in zip(responses, ids, strict=True):
        assert response.headers["Content-Type"] == "application/json"
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert uuid.UUID(request_id).version == 4
        response.json()
    assert len(set(ids)) == len(ids)


def test_x_language_is_accepted_and_recorded(emu: Emulator, api: httpx.Client) -> None:
    response = api.get("/backups", headers={"X-Language": "zh-cn"})
    assert response.status_code == 200
    assert emu.requests()[-1].headers["x-language"] == "zh-cn"


def test_reset(emu: Emulator, client: httpx.Client, api: httpx.Client) -> None:
    create(api)
    client.post("/_emulator/instances", json={"id": INSTANCE, "status": "FROZEN"})
    client.post("/_emulator/config", json={"backup_seconds": 99})

    assert client.post("/_emulator/reset").status_code == 200

    assert emu.requests() == []
    assert_error(api.get("/backups"), 401, "APIGW.0301")  # tokens are gone
    fresh = client.post("/v3/auth/tokens", json=login_body()).headers["X-Subject-Token"]
    api.headers["X-Auth-Token"] = fresh
    assert api.get("/backups").json() == {"backups": [], "total_count": 0}
    assert api.get(f"/instances/{INSTANCE}").json()["instance"]["status"] == "ACTIVE"
    config = client.get("/_emulator/config").json()["config"]
    assert config["backup_seconds"] == BUILD_SECONDS


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_emulator/config", {"backup_seconds": -1}),
        ("/_emulator/config", {"unknown": 1}),
        ("/_emulator/instances", {"status": "ACTIVE"}),
        ("/_emulator/backups", {"instance_id": INSTANCE, "type": "weekly"}),
        ("/_emulator/backups", {"instance_id": INSTANCE, "count": 0}),
        ("/_emulator/backups", {"instance_id": INSTANCE, "count": "10"}),
        ("/_emulator/backups", {"instance_id": INSTANCE, "count": 2, "spacing_seconds": -1}),
        ("/_emulator/config", {"ignore_time_filters": "yes"}),
        ("/_emulator/config", {"clock_offset_seconds": True}),
    ],
)
def test_admin_rejects_bad_input(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    assert client.post(path, json=body).status_code == 400


# --- programmatic API and CLI -----------------------------------------------------------------
def test_programmatic_lifecycle() -> None:
    emu = Emulator(EmulatorConfig(port=0, instances=(INSTANCE,)))
    with pytest.raises(RuntimeError):
        _ = emu.url
    with emu:
        token = emu.issue_token()
        response = httpx.get(
            f"{emu.url}/v3/{PROJECT}/instances/{OTHER_INSTANCE}",
            headers={"X-Auth-Token": token},
            timeout=5.0,
        )
        assert_error(response, 404, "DBS.200002")  # only the configured instance is seeded
        url = emu.url
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/_emulator/requests", timeout=2.0)


def test_cli_runs_and_stops() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--backup-seconds", "0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        # selectors (epoll), not select(): a long session may hold more than 1024 descriptors
        with selectors.DefaultSelector() as waiting:
            waiting.register(proc.stdout, selectors.EVENT_READ)
            ready = waiting.select(10.0)
        assert ready, "no 'listening on' line within 10 s"
        line = proc.stdout.readline().decode()
        match = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        response = httpx.post(f"{url}/v3/auth/tokens", json=login_body(), timeout=5.0)
        assert response.status_code == 201
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"OS_AUTH_URL={url}/v3" in stderr.decode()
    assert f"GAUSSDB_ENDPOINT={url}" in stderr.decode()
