"""The emulator's AK/SK verification: the published vector, the client against it over real
HTTP, every way a signature can be wrong, and the function end to end with AK/SK settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from clients.auth import AkSkAuth
from emulator import Emulator, EmulatorConfig
from emulator.auth import canonical_request, signature, string_to_sign
from emulator.wire import Request
from helpers import INSTANCE, PROJECT_ID, SetEnv, event, make_client, sign

CONFIG = EmulatorConfig()
AK, SK = CONFIG.access_key, CONFIG.secret_key
SIGNATURE_FAIL = "verify aksk signature fail"

# Huawei's signing guide (the same vector as tests/unit/test_auth.py, here for the server's side).
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_STRING_TO_SIGN = (
    "SDK-HMAC-SHA256\n20191115T033655Z\n"
    "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
)
VECTOR_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"


def test_server_side_published_vector() -> None:
    request = Request(
        method="GET",
        path="/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query={},
        headers={
            "content-type": "application/json",
            "host": "service.region.example.com",
            "x-sdk-date": "20191115T033655Z",
        },
        body=b"",
        base_url="https://service.region.example.com",
        raw_path="/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        raw_query="marker=13551d6b-755d-4757-b956-536f674975c0&limit=2",
    )
    canonical = canonical_request(request, ["content-type", "host", "x-sdk-date"])
    assert string_to_sign("20191115T033655Z", canonical) == VECTOR_STRING_TO_SIGN
    assert signature(VECTOR_SK, VECTOR_STRING_TO_SIGN) == VECTOR_SIGNATURE


def aksk(
    *,
    access_key: str = AK,
    secret_key: str = SK,
    project_id: str = PROJECT_ID,
    security_token: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> AkSkAuth:
    return AkSkAuth(
        access_key=access_key,
        secret_key=secret_key,
        project_id=project_id,
        security_token=security_token,
        clock=clock,
    )


def api(emu: Emulator, auth: httpx.Auth) -> httpx.Client:
    return httpx.Client(base_url=f"{emu.url}/v3/{PROJECT_ID}", auth=auth)


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["error_msg"]


def test_signed_calls_are_accepted(emu: Emulator) -> None:
    with api(emu, aksk()) as client:
        assert client.get(f"/instances/{INSTANCE}").status_code == 200
        # Query parameters (sorted and encoded on both sides) and a body are covered.
        listed = client.get("/backups", params={"limit": "5", "instance_id": INSTANCE})
        assert listed.status_code == 200
        created = client.post(
            "/backups/create", json={"instance_id": INSTANCE, "name": "aksk-backup-1"}
        )
        assert created.status_code == 201, created.text
    record = emu.requests()[-1]
    assert record.headers["authorization"] == "<redacted>"  # never in the emulator's log
    assert record.headers["x-sdk-date"]
    assert not any(r.path.endswith("/auth/tokens") for r in emu.requests())


def test_wrong_secret_key_is_refused(emu: Emulator) -> None:
    with api(emu, aksk(secret_key=SK + "x")) as client:
        response = client.get(f"/instances/{INSTANCE}")
    status, code, message = error(response)
    assert (status, code) == (401, "APIGW.0301")
    assert SIGNATURE_FAIL in message


def test_unknown_access_key_is_refused(emu: Emulator) -> None:
    with api(emu, aksk(access_key="NOSUCHACCESSKEY00000")) as client:
        status, code, message = error(client.get(f"/instances/{INSTANCE}"))
    assert (status, code) == (401, "APIGW.0301")
    assert "ak not exist" in message


@pytest.mark.parametrize("minutes", [16, -16])
def test_stale_or_future_sdk_date_is_refused(emu: Emulator, minutes: int) -> None:
    skewed = datetime.now(UTC) + timedelta(minutes=minutes)
    with api(emu, aksk(clock=lambda: skewed)) as client:
        status, code, message = error(client.get(f"/instances/{INSTANCE}"))
    assert (status, code) == (401, "APIGW.0301")
    assert "15 minutes" in message


def test_date_within_fifteen_minutes_is_accepted(emu: Emulator) -> None:
    skewed = datetime.now(UTC) - timedelta(minutes=14)
    with api(emu, aksk(clock=lambda: skewed)) as client:
        assert client.get(f"/instances/{INSTANCE}").status_code == 200


def signed_then_sent(emu: Emulator, change: Callable[[httpx.Request], httpx.Request]) -> Any:
    """Sign a create request, let ``change`` alter it afterwards, send it unsigned again."""
    auth = aksk()
    with httpx.Client() as client:
        request = client.build_request(
            "POST",
            f"{emu.url}/v3/{PROJECT_ID}/backups/create",
            json={"instance_id": INSTANCE, "name": "aksk-backup-2"},
        )
        signed = next(auth.sync_auth_flow(request))
        return client.send(change(signed))


def test_body_changed_after_signing_is_refused(emu: Emulator) -> None:
    def other_body(request: httpx.Request) -> httpx.Request:
        content = request.content.replace(b"aksk-backup-2", b"aksk-backup-3")
        return httpx.Request(request.method, request.url, headers=request.headers, content=content)

    status, _, message = error(signed_then_sent(emu, other_body))
    assert status == 401 and SIGNATURE_FAIL in message
    assert all(r.status == 401 for r in emu.requests())


def test_query_changed_after_signing_is_refused(emu: Emulator) -> None:
    def other_query(request: httpx.Request) -> httpx.Request:
        url = request.url.copy_with(query=b"dry_run=true")
        return httpx.Request(request.method, url, headers=request.headers, content=request.content)

    status, _, message = error(signed_then_sent(emu, other_query))
    assert status == 401 and SIGNATURE_FAIL in message


@pytest.mark.parametrize(
    ("name", "value"),
    [("Content-Type", "text/plain"), ("X-Project-Id", "0" * 32), ("Host", "other.example")],
)
def test_signed_header_changed_after_signing_is_refused(
    emu: Emulator, name: str, value: str
) -> None:
    def changed(request: httpx.Request) -> httpx.Request:
        request.headers[name] = value
        return request

    status, _, message = error(signed_then_sent(emu, changed))
    assert status == 401 and SIGNATURE_FAIL in message
    assert all(r.status == 401 for r in emu.requests())


def test_headers_a_proxy_rewrites_are_not_signed(emu: Emulator) -> None:
    """A proxy that rewrites Accept-Encoding or User-Agent (issue #11) breaks nothing."""

    def proxied(request: httpx.Request) -> httpx.Request:
        request.headers["User-Agent"] = "corporate-proxy/1.0"
        request.headers["Accept-Encoding"] = "identity"
        request.headers["Accept"] = "*/*"
        return request

    response = signed_then_sent(emu, proxied)
    assert response.status_code == 201, response.text
    (record,) = emu.requests()
    assert record.headers["user-agent"] == "corporate-proxy/1.0"
    authorization = response.request.headers["Authorization"]
    signed = authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0]
    assert signed == "content-type;host;x-project-id;x-sdk-date"


@pytest.mark.parametrize(
    "authorization",
    [
        "SDK-HMAC-SHA256 Access=EMULATORACCESSKEY001, SignedHeaders=host, Signature=00",
        "SDK-HMAC-SHA256 Access=EMULATORACCESSKEY001",
        "SDK-HMAC-SHA256 garbage",
    ],
)
def test_malformed_authorization_is_refused(emu: Emulator, authorization: str) -> None:
    response = httpx.get(
        f"{emu.url}/v3/{PROJECT_ID}/instances/{INSTANCE}",
        headers={"Authorization": authorization, "X-Sdk-Date": "20240101T000000Z"},
    )
    status, code, message = error(response)
    assert (status, code) == (401, "APIGW.0301")
    assert SIGNATURE_FAIL in message


def test_temporary_credentials_need_their_security_token(emu: Emulator) -> None:
    def temporary(token: str | None) -> AkSkAuth:
        return aksk(
            access_key=CONFIG.temporary_access_key,
            secret_key=CONFIG.temporary_secret_key,
            security_token=token,
        )

    with api(emu, temporary(CONFIG.security_token)) as client:
        assert client.get(f"/instances/{INSTANCE}").status_code == 200
    for wrong in (None, "stolen-" + CONFIG.security_token):
        with api(emu, temporary(wrong)) as client:
            status, _, message = error(client.get(f"/instances/{INSTANCE}"))
        assert status == 401 and "security token" in message


def test_other_project_is_refused(emu: Emulator) -> None:
    other = "0" * 32
    with httpx.Client(base_url=f"{emu.url}/v3/{other}", auth=aksk(project_id=other)) as client:
        status, _, message = error(client.get(f"/instances/{INSTANCE}"))
    assert status == 401 and "project" in message


# --------------------------------------------------------------------------------------
# The function with AK/SK settings, through the webhook


@pytest.fixture
def aksk_env(set_env: SetEnv) -> dict[str, str]:
    return set_env(OS_PASSWORD=None, OS_USERNAME=None, OS_ACCESS_KEY=AK, OS_SECRET_KEY=SK)


def post_event(client: FlaskClient, body: bytes) -> Any:
    return client.post("/", data=body, headers=sign(body))


def test_webhook_with_aksk_creates_the_backup(aksk_env: dict[str, str], emu: Emulator) -> None:
    response = post_event(make_client(), event())
    assert response.status_code == 202, response.get_json()
    # the idempotency look-up and the instance pre-check (side by side), then the create
    first, second, call = emu.requests()
    lookup, precheck = sorted((first, second), key=lambda r: "/instances/" in r.path)
    assert lookup.path == f"/v3/{PROJECT_ID}/backups" and lookup.status == 200
    assert precheck.path.startswith(f"/v3/{PROJECT_ID}/instances/") and precheck.status == 200
    assert all(r.headers["x-sdk-date"] for r in (lookup, precheck))
    assert call.path == f"/v3/{PROJECT_ID}/backups/create" and call.status == 201
    assert call.headers["x-sdk-date"] and call.headers["x-project-id"] == PROJECT_ID


def test_webhook_with_wrong_secret_key_is_502_without_the_key(
    aksk_env: dict[str, str], emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_SECRET_KEY", "not-the-" + SK)
    response = post_event(make_client(), event())
    answer = response.get_json()
    assert response.status_code == 502
    assert answer["error_code"] == "APIGW.0301"
    assert SIGNATURE_FAIL in answer["error_msg"]
    assert SK not in response.get_data(as_text=True)
    statuses = [r.status for r in emu.requests()]  # the look-up and the pre-check, side by side
    assert statuses and set(statuses) == {401}


def test_webhook_with_temporary_credentials(
    aksk_env: dict[str, str], emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_ACCESS_KEY", CONFIG.temporary_access_key)
    monkeypatch.setenv("OS_SECRET_KEY", CONFIG.temporary_secret_key)
    monkeypatch.setenv("OS_SECURITY_TOKEN", CONFIG.security_token)
    response = post_event(make_client(), event())
    assert response.status_code == 202, response.get_json()
    assert all(r.headers["x-security-token"] == "<redacted>" for r in emu.requests())
