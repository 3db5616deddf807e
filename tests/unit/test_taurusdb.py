"""TaurusDBClient over real sockets against the emulator; MockTransport only for answers a
server cannot be made to give (non-JSON 502, malformed 201, a connection dropped mid-request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial

import httpx
import pytest

from clients.taurusdb import BAD_RESPONSE, USER_AGENT, TaurusDBClient
from config import Settings
from emulator import Emulator
from errors import ApiError, ConfigurationError, UpstreamUnavailableError
from helpers import bare_settings
from models import (
    BackupPage,
    BackupStatus,
    CreateBackupRequest,
    CreateBackupResult,
    DeletedBackup,
    Instance,
    Job,
    JobStatus,
)
from runtime import api_client

PROJECT_ID = "619d3e78f61b4be68bc5aa0b59edcf7b"
INSTANCE_ID = "07033b125fd94a8a96896f8bcfee6ddain07"
OTHER_INSTANCES = [f"{i:032x}in07" for i in range(1, 10)]
UNKNOWN_INSTANCE = "ffffffffffffffffffffffffffffffffin07"
TOKEN_PATH = "/v3/auth/tokens"

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    """Settings read from exactly the given environment variables (nothing inherited)."""

    return partial(bare_settings, monkeypatch)


def password_env(emu: Emulator, **overrides: str) -> dict[str, str]:
    env = {
        "OS_AUTH_URL": f"{emu.url}/v3",
        "GAUSSDB_ENDPOINT": emu.url,
        "OS_USERNAME": "demo",
        "OS_PASSWORD": "demo-password",
        "OS_USER_DOMAIN_NAME": "OTC-EU-DE-00000000001000000001",
        "OS_PROJECT_ID": PROJECT_ID,
    }
    env.update(overrides)
    return {key: value for key, value in env.items() if value}


@pytest.fixture
def client(emu: Emulator, make_settings: SettingsFactory) -> Iterator[TaurusDBClient]:
    with api_client(make_settings(**password_env(emu))) as api:
        yield api


def api_requests(emu: Emulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emu.requests() if r.path != TOKEN_PATH]


def wait_until_completed(client: TaurusDBClient, backup_ids: set[str]) -> None:
    """Bounded polling: the emulator builds a backup in 0.3 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = {
            b.id
            for b in client.iter_backups(backup_type="manual")
            if b.status is BackupStatus.COMPLETED
        }
        if backup_ids <= done:
            return
        time.sleep(0.1)
    raise AssertionError(f"backups not completed in time: {sorted(backup_ids - done)}")


# --------------------------------------------------------------------------------------
# happy paths against the emulator


def test_create_backup(emu: Emulator, client: TaurusDBClient) -> None:
    result = client.create_backup(CreateBackupRequest(instance_id=INSTANCE_ID, name="pre-deploy-1"))
    assert isinstance(result, CreateBackupResult)
    assert result.backup.instance_id == INSTANCE_ID
    assert result.backup.name == "pre-deploy-1"
    assert result.backup.status is BackupStatus.BUILDING
    assert result.backup.begin_time.tzinfo is not None
    assert result.job_id

    sent = [r for r in emu.requests() if r.path != TOKEN_PATH]
    assert len(sent) == 1
    record = sent[0]
    assert (record.method, record.path, record.status) == (
        "POST",
        f"/v3/{PROJECT_ID}/backups/create",
        201,
    )
    assert record.body == {"instance_id": INSTANCE_ID, "name": "pre-deploy-1"}
    assert record.headers["content-type"] == "application/json;charset=utf-8"  # the SDK's
    assert record.headers["accept"] == "application/json"
    assert record.headers["x-language"] == "en-us"
    assert record.headers["user-agent"] == USER_AGENT
    assert "x-auth-token" in record.headers


def test_create_backup_sends_the_description(emu: Emulator, client: TaurusDBClient) -> None:
    client.create_backup(
        CreateBackupRequest(instance_id=INSTANCE_ID, name="pre-deploy-2", description="release 7")
    )
    record = emu.requests()[-1]
    assert record.body == {
        "instance_id": INSTANCE_ID,
        "name": "pre-deploy-2",
        "description": "release 7",
    }


def test_job_instance_list_and_delete(emu: Emulator, client: TaurusDBClient) -> None:
    created = client.create_backup(CreateBackupRequest(instance_id=INSTANCE_ID, name="lifecycle"))

    instance = client.get_instance(INSTANCE_ID)
    assert isinstance(instance, Instance)
    assert (instance.id, instance.status) == (INSTANCE_ID, "BACKING UP")

    job = client.get_job(created.job_id)
    assert isinstance(job, Job)
    assert job.id == created.job_id
    assert job.status in (JobStatus.RUNNING, JobStatus.COMPLETED)

    wait_until_completed(client, {created.backup.id})
    job = client.get_job(created.job_id)
    assert job.status is JobStatus.COMPLETED
    assert client.get_instance(INSTANCE_ID).status == "ACTIVE"

    page = client.list_backups(backup_id=created.backup.id)
    assert isinstance(page, BackupPage)
    assert page.total_count == 1
    (item,) = page.backups
    assert (item.id, item.name, item.type) == (created.backup.id, "lifecycle", "manual")
    assert item.status is BackupStatus.COMPLETED
    assert item.end_time is not None

    deleted = client.delete_backup(created.backup.id)
    assert isinstance(deleted, DeletedBackup)
    assert (deleted.backup_id, deleted.backup_name) == (created.backup.id, "lifecycle")
    assert client.list_backups(backup_id=created.backup.id).total_count == 0

    job_query = next(r for r in emu.requests() if r.path.endswith("/jobs"))
    assert job_query.query == {"id": created.job_id}


def test_list_backups_sends_only_the_given_filters(emu: Emulator, client: TaurusDBClient) -> None:
    emu.add_backup(INSTANCE_ID)  # an automated one
    page = client.list_backups(instance_id=INSTANCE_ID, backup_type="auto", offset=0, limit=10)
    assert page.total_count == 1
    assert page.backups[0].type == "auto"
    record = emu.requests()[-1]
    assert record.query == {
        "instance_id": INSTANCE_ID,
        "backup_type": "auto",
        "offset": "0",
        "limit": "10",
    }
    assert client.list_backups(backup_type="manual").total_count == 0


def test_iter_backups_walks_every_page(emu: Emulator, client: TaurusDBClient) -> None:
    # One backup at a time per instance, so seven instances build in parallel.
    created = {
        client.create_backup(
            CreateBackupRequest(instance_id=instance, name=f"page-test-{n}")
        ).backup.id
        for n, instance in enumerate(OTHER_INSTANCES[:7])
    }
    wait_until_completed(client, created)

    before = len(emu.requests())
    listed = list(client.iter_backups(backup_type="manual", page_size=3))
    assert {b.id for b in listed} == created
    assert len(listed) == 7
    pages = emu.requests()[before:]
    assert [r.query["offset"] for r in pages] == ["0", "3", "6"]
    assert all(r.query["limit"] == "3" for r in pages)


def test_iter_backups_of_nothing_is_one_request(emu: Emulator, client: TaurusDBClient) -> None:
    assert list(client.iter_backups(instance_id=INSTANCE_ID)) == []
    assert len(api_requests(emu)) == 1


def test_project_id_from_the_token_when_only_the_name_is_set(
    emu: Emulator, make_settings: SettingsFactory
) -> None:
    settings = make_settings(**password_env(emu, OS_PROJECT_ID="", OS_PROJECT_NAME="eu-de"))
    with api_client(settings) as api:
        assert api.project_id() == PROJECT_ID
        assert api.get_instance(INSTANCE_ID).project_id == PROJECT_ID
        api.get_instance(INSTANCE_ID)
    assert api_requests(emu) == [("GET", f"/v3/{PROJECT_ID}/instances/{INSTANCE_ID}")] * 2
    assert sum(1 for r in emu.requests() if r.path == TOKEN_PATH) == 1


# --------------------------------------------------------------------------------------
# error answers of the emulator


def test_invalid_name_is_api_error_400(emu: Emulator, client: TaurusDBClient) -> None:
    # Bypass the local model check to see the server's answer.
    bad = CreateBackupRequest.model_construct(
        instance_id=INSTANCE_ID, name="1-bad", description=None
    )
    with pytest.raises(ApiError) as caught:
        client.create_backup(bad)
    error = caught.value
    assert (error.status_code, error.error_code) == (400, "DBS.280277")
    assert error.error_msg == "Invalid object name."
    assert error.request_id == emu.requests()[-1].request_id


def test_unknown_instance_is_api_error_404(emu: Emulator, client: TaurusDBClient) -> None:
    with pytest.raises(ApiError) as caught:
        client.get_instance(UNKNOWN_INSTANCE)
    assert (caught.value.status_code, caught.value.error_code) == (404, "DBS.200002")
    assert caught.value.request_id == emu.requests()[-1].request_id

    with pytest.raises(ApiError) as caught:
        client.create_backup(CreateBackupRequest(instance_id=UNKNOWN_INSTANCE, name="nowhere"))
    assert (caught.value.status_code, caught.value.error_code) == (404, "DBS.200002")


def test_backup_in_progress_is_api_error_409(emu: Emulator, client: TaurusDBClient) -> None:
    client.create_backup(CreateBackupRequest(instance_id=INSTANCE_ID, name="first"))
    with pytest.raises(ApiError) as caught:
        client.create_backup(CreateBackupRequest(instance_id=INSTANCE_ID, name="second"))
    error = caught.value
    assert (error.status_code, error.error_code) == (409, "DBS.201205")
    assert error.error_msg == "Backup is in progress, please wait."
    assert error.request_id
    assert str(error) == "TaurusDB API error 409 DBS.201205: Backup is in progress, please wait."


def test_other_emulator_errors(emu: Emulator, client: TaurusDBClient) -> None:
    cases: list[tuple[Callable[[], object], int, str]] = [
        (lambda: client.list_backups(limit=101), 400, "DBS.280439"),
        (lambda: client.get_job("00000000-0000-0000-0000-000000000000"), 400, "DBS.200543"),
        (lambda: client.delete_backup("0" * 32 + "br07"), 404, "DBS.201010"),
    ]
    for call, status, code in cases:
        with pytest.raises(ApiError) as caught:
            call()
        assert (caught.value.status_code, caught.value.error_code) == (status, code)
        assert caught.value.request_id == emu.requests()[-1].request_id


def test_path_segments_are_encoded(emu: Emulator, client: TaurusDBClient) -> None:
    # "?" would otherwise start a query and leave the id out of the path.
    with pytest.raises(ApiError) as caught:
        client.get_instance("abc?x=1")
    assert caught.value.status_code == 400  # DBS.280404: the whole string reached the route
    assert caught.value.error_code == "DBS.280404"
    assert emu.requests()[-1].path == f"/v3/{PROJECT_ID}/instances/abc?x=1"
    assert emu.requests()[-1].query == {}
    with pytest.raises(ValueError, match="dot segment"):
        client.delete_backup("..")


# --------------------------------------------------------------------------------------
# edge cases on MockTransport

Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(handler: Handler, *, timeout: float = 5.0) -> TaurusDBClient:
    return TaurusDBClient(
        endpoint="https://gaussdb-mysql.eu-de.otc.t-systems.com/",
        auth=httpx.Auth(),  # no credentials needed by a mock
        project_id=PROJECT_ID,
        timeout=timeout,
        transport=httpx.MockTransport(handler),
    )


def answer(response: httpx.Response) -> Handler:
    return lambda request: response


def test_non_json_502_keeps_only_the_reason_phrase() -> None:
    page = "<html>" + "x" * 10_000 + "</html>"
    with (
        mock_client(answer(httpx.Response(502, text=page))) as api,
        pytest.raises(ApiError) as caught,
    ):
        api.get_instance(INSTANCE_ID)
    error = caught.value
    assert (error.status_code, error.error_code, error.error_msg) == (
        502,
        "HTTP.502",
        "Bad Gateway",
    )
    assert error.request_id is None


@pytest.mark.parametrize(
    ("body", "headers", "code", "msg", "request_id"),
    [
        ({"code": "APIGW.0308", "message": "throttled"}, {}, "APIGW.0308", "throttled", None),
        (
            {"error": {"code": "APIG.1009", "message": "nested"}},
            {"X-Request-Id": "hdr-1"},
            "APIG.1009",
            "nested",
            "hdr-1",
        ),
        (
            {"error_code": "APIGW.0101", "error_msg": "m", "request_id": "body-1"},
            {},
            "APIGW.0101",
            "m",
            "body-1",
        ),
        (
            {"error_code": "X", "error_msg": "m", "request_id": "body-1"},
            {"X-Request-Id": "hdr-2"},
            "X",
            "m",
            "hdr-2",
        ),
        ({"unexpected": True}, {}, "HTTP.429", "Too Many Requests", None),
        ({"error_code": "DBS.1", "error_msg": "y" * 500}, {}, "DBS.1", "y" * 199 + "…", None),
    ],
)
def test_error_body_shapes(
    body: object, headers: dict[str, str], code: str, msg: str, request_id: str | None
) -> None:
    response = httpx.Response(429, json=body, headers=headers)
    with mock_client(answer(response)) as api, pytest.raises(ApiError) as caught:
        api.get_instance(INSTANCE_ID)
    error = caught.value
    assert (error.status_code, error.error_code, error.error_msg, error.request_id) == (
        429,
        code,
        msg,
        request_id,
    )


def test_malformed_201_is_bad_response() -> None:
    response = httpx.Response(201, json={"backup": {"id": "b1"}, "job_id": "j1"})
    request = CreateBackupRequest(instance_id=INSTANCE_ID, name="broken")
    with mock_client(answer(response)) as api, pytest.raises(ApiError) as caught:
        api.create_backup(request)
    error = caught.value
    assert (error.status_code, error.error_code) == (502, BAD_RESPONSE)
    assert "create_backup" in error.error_msg
    assert "backup.name" in error.error_msg


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(200, json={"backup": {}, "job_id": "j"}), "HTTP 200 instead of 201"),
        (httpx.Response(201, text="<html>ok</html>"), "not JSON"),
    ],
)
def test_unexpected_success_answers_are_bad_responses(
    response: httpx.Response, detail: str
) -> None:
    request = CreateBackupRequest(instance_id=INSTANCE_ID, name="broken")
    with mock_client(answer(response)) as api, pytest.raises(ApiError) as caught:
        api.create_backup(request)
    assert caught.value.error_code == BAD_RESPONSE
    assert detail in caught.value.error_msg


def test_missing_envelope_is_bad_response() -> None:
    with (
        mock_client(answer(httpx.Response(200, json={"jobs": []}))) as api,
        pytest.raises(ApiError, match="get_job") as caught,
    ):
        api.get_job("j1")
    assert caught.value.error_code == BAD_RESPONSE


def test_connection_dropped_mid_request_is_upstream_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    with mock_client(handler) as api, pytest.raises(UpstreamUnavailableError) as caught:
        api.list_backups()
    assert caught.value.timed_out is False
    assert "list_backups" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.TransportError)


def test_timeout_is_upstream_unavailable_timed_out() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with (
        mock_client(handler, timeout=2.5) as api,
        pytest.raises(UpstreamUnavailableError) as caught,
    ):
        api.get_job("j1")
    assert caught.value.timed_out is True
    assert "2.5 s" in str(caught.value)


def test_timeouts_and_paths_on_the_wire() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"backup_id": "b", "backup_name": "n"})

    with mock_client(handler, timeout=8.0) as api:
        api.delete_backup("a/b c")
    (request,) = seen
    assert request.url.raw_path == f"/v3/{PROJECT_ID}/backups/a%2Fb%20c".encode()
    assert request.extensions["timeout"] == {"connect": 3.0, "read": 8.0, "write": 8.0, "pool": 8.0}


# --------------------------------------------------------------------------------------
# runtime.api_client: the client the settings ask for


def test_api_client_uses_aksk_when_both_keys_are_set(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        GAUSSDB_ENDPOINT="https://api.example",
        OS_ACCESS_KEY="AKEXAMPLE",
        OS_SECRET_KEY="sk-example",
        OS_PROJECT_ID=PROJECT_ID,
        OS_USERNAME="demo",  # ignored: AK/SK wins
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"backups": [], "total_count": 0})

    with api_client(settings, transport=httpx.MockTransport(handler)) as api:
        api.list_backups()
    (request,) = seen  # no IAM request at all
    assert request.headers["Authorization"].startswith("SDK-HMAC-SHA256 Access=AKEXAMPLE, ")
    assert request.headers["X-Project-Id"] == PROJECT_ID
    assert "X-Auth-Token" not in request.headers
    assert "sk-example" not in str(request.headers)


def test_api_client_uses_the_token_otherwise(emu: Emulator, client: TaurusDBClient) -> None:
    client.get_instance(INSTANCE_ID)
    assert [r.path for r in emu.requests()] == [
        TOKEN_PATH,
        f"/v3/{PROJECT_ID}/instances/{INSTANCE_ID}",
    ]


def test_api_client_names_every_missing_variable(make_settings: SettingsFactory) -> None:
    with pytest.raises(ConfigurationError) as caught:
        api_client(make_settings())
    message = str(caught.value)
    for name in (
        "OS_USERNAME",
        "OS_PASSWORD",
        "OS_USER_DOMAIN_NAME",
        "OS_PROJECT_ID or OS_PROJECT_NAME",
    ):
        assert f"{name} is not set (needed for IAM password authentication)" in message

    with pytest.raises(ConfigurationError) as caught:
        api_client(
            make_settings(OS_USERNAME="demo", OS_USER_DOMAIN_NAME="d", OS_PROJECT_NAME="eu-de")
        )
    assert str(caught.value) == "OS_PASSWORD is not set (needed for IAM password authentication)"


def test_api_client_aksk_needs_project_id_and_both_keys(make_settings: SettingsFactory) -> None:
    with pytest.raises(ConfigurationError) as caught:
        api_client(make_settings(OS_ACCESS_KEY="AK", OS_SECRET_KEY="SK"))
    assert str(caught.value) == "OS_PROJECT_ID is not set (needed for AK/SK request signing)"

    with pytest.raises(ConfigurationError) as caught:
        api_client(make_settings(OS_ACCESS_KEY="AK", OS_PROJECT_ID=PROJECT_ID))
    assert str(caught.value) == "OS_SECRET_KEY is not set (needed for AK/SK request signing)"
