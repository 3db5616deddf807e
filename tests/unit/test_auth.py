"""TokenAuth against the emulator's IAM over real HTTP; AkSkAuth against published vectors.

MockTransport appears only where a real server cannot produce the case (IAM timing out,
answering 201 without a token, a race between two 401s).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from clients.auth import (
    AkSkAuth,
    TokenAuth,
    canonical_request,
    sign_string,
    signed_header_names,
    string_to_sign,
)
from clients.retry import Deadline, within
from emulator import Emulator
from errors import AuthenticationError, UpstreamUnavailableError

PROJECT_ID = "619d3e78f61b4be68bc5aa0b59edcf7b"
INSTANCE_ID = "07033b125fd94a8a96896f8bcfee6ddain07"
PASSWORD = "demo-password"
DOMAIN = "OTC-EU-DE-00000000001000000001"
TOKEN_PATH = "/v3/auth/tokens"


def token_auth(
    auth_url: str,
    *,
    password: str = PASSWORD,
    project_id: str | None = PROJECT_ID,
    project_name: str | None = None,
    transport: httpx.BaseTransport | None = None,
    margin_seconds: float = 300.0,
) -> TokenAuth:
    return TokenAuth(
        auth_url=auth_url,
        username="demo",
        password=password,
        domain_name=DOMAIN,
        project_id=project_id,
        project_name=project_name,
        timeout=5.0,
        margin_seconds=margin_seconds,
        transport=transport,
    )


def token_requests(emu: Emulator) -> int:
    return sum(1 for r in emu.requests() if r.method == "POST" and r.path == TOKEN_PATH)


def instance_url(emu: Emulator) -> str:
    return f"{emu.url}/v3/{PROJECT_ID}/instances/{INSTANCE_ID}"


def set_token_ttl(emu: Emulator, seconds: float) -> None:
    emu.configure(token_ttl_seconds=seconds)  # applies to tokens issued afterwards


# --------------------------------------------------------------------------------------
# TokenAuth over real HTTP


def test_one_token_for_many_calls(emu: Emulator) -> None:
    auth = token_auth(f"{emu.url}/v3")
    with httpx.Client(auth=auth) as client:
        for _ in range(5):
            assert client.get(instance_url(emu)).status_code == 200
    auth.close()
    assert token_requests(emu) == 1
    token_call = next(r for r in emu.requests() if r.path == TOKEN_PATH)
    assert token_call.query.get("nocatalog") == "true"
    body = token_call.body
    assert body is not None
    assert body["auth"]["scope"] == {"project": {"id": PROJECT_ID}}
    assert body["auth"]["identity"]["methods"] == ["password"]


def test_eight_threads_share_one_token_request(emu: Emulator) -> None:
    auth = token_auth(f"{emu.url}/v3")
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def call(client: httpx.Client) -> None:
        try:
            barrier.wait(timeout=5)
            statuses.append(client.get(instance_url(emu)).status_code)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with httpx.Client(auth=auth) as client:
        threads = [threading.Thread(target=call, args=(client,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    auth.close()
    assert not errors
    assert statuses == [200] * 8
    assert token_requests(emu) == 1


def test_short_lived_token_is_reused_then_refreshed(emu: Emulator) -> None:
    # A 1 s token with the default 300 s margin: the margin is capped at half the lifetime,
    # so the token is still reused for ~0.5 s instead of being fetched for every call.
    set_token_ttl(emu, 1.0)
    auth = token_auth(f"{emu.url}/v3")
    with httpx.Client(auth=auth) as client:
        assert client.get(instance_url(emu)).status_code == 200
        assert client.get(instance_url(emu)).status_code == 200
        assert token_requests(emu) == 1
        deadline = time.monotonic() + 5
        while token_requests(emu) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            assert client.get(instance_url(emu)).status_code == 200
    auth.close()
    assert token_requests(emu) == 2
    # Refreshed before expiry: the API never had to reject a token.
    assert all(r.status != 401 for r in emu.requests())


def test_revoked_token_reauthenticates_once_and_resends(emu: Emulator) -> None:
    auth = token_auth(f"{emu.url}/v3")
    with httpx.Client(auth=auth) as client:
        assert client.get(instance_url(emu)).status_code == 200
        emu.revoke_tokens()
        response = client.get(instance_url(emu))
    auth.close()
    assert response.status_code == 200
    assert token_requests(emu) == 2
    api_calls = [r.status for r in emu.requests() if r.path != TOKEN_PATH]
    assert api_calls == [200, 401, 200]


def test_expired_token_apigw_0307_reauthenticates(emu: Emulator) -> None:
    # The emulator expires the token after 0.2 s; locally it is made to look fresh for ever,
    # as if the local clock lagged behind IAM's, so the API is the one to say "expired".
    set_token_ttl(emu, 0.2)
    auth = token_auth(f"{emu.url}/v3")
    with httpx.Client(auth=auth) as client:
        assert client.get(instance_url(emu)).status_code == 200
        assert auth._token is not None
        auth._token = dataclasses.replace(auth._token, refresh_at=float("inf"))
        set_token_ttl(emu, 3600)
        time.sleep(0.3)  # past the emulator's expiry: it now answers 401 APIGW.0307
        response = client.get(instance_url(emu))
    auth.close()
    assert response.status_code == 200
    rejected = [r for r in emu.requests() if r.status == 401]
    assert len(rejected) == 1
    assert token_requests(emu) == 2


def test_second_401_is_returned_as_is(emu: Emulator) -> None:
    calls = 0

    def api(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json={"error_code": "APIGW.0301", "error_msg": "nope"})

    auth = token_auth(f"{emu.url}/v3")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as client:
        response = client.get("https://api.example/v3/x")
    auth.close()
    assert response.status_code == 401
    assert calls == 2
    assert token_requests(emu) == 2


def test_wrong_password_raises_without_leaking_it(emu: Emulator) -> None:
    wrong = "not-the-password-4711"
    auth = token_auth(f"{emu.url}/v3", password=wrong)
    with httpx.Client(auth=auth) as client, pytest.raises(AuthenticationError) as caught:
        client.get(instance_url(emu))
    auth.close()
    message = str(caught.value)
    assert message.startswith("IAM refused the credentials for user 'demo' (401): ")
    assert wrong not in message
    assert caught.value.status_code == 401
    assert all(r.path == TOKEN_PATH for r in emu.requests())


def test_project_id_from_token_when_only_the_name_is_given(emu: Emulator) -> None:
    auth = token_auth(f"{emu.url}/v3", project_id=None, project_name="eu-de")
    assert auth.project_id() == PROJECT_ID
    assert auth.project_id() == PROJECT_ID
    auth.close()
    assert token_requests(emu) == 1
    body = emu.requests()[0].body
    assert body is not None
    assert body["auth"]["scope"] == {"project": {"name": "eu-de"}}


def test_configured_project_id_needs_no_token(emu: Emulator) -> None:
    auth = token_auth(f"{emu.url}/v3")
    assert auth.project_id() == PROJECT_ID
    auth.close()
    assert token_requests(emu) == 0


def test_repr_hides_the_password() -> None:
    auth = token_auth("https://iam.example/v3")
    assert PASSWORD not in repr(auth)
    auth.close()


# --------------------------------------------------------------------------------------
# TokenAuth edge cases a real IAM cannot be made to produce on demand


def iam_token_response(
    token: str = "tok-1", *, lifetime: float = 86400.0, project_id: str = PROJECT_ID
) -> httpx.Response:
    issued = datetime.now(UTC)
    body = {
        "token": {
            "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "expires_at": (issued + timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "project": {"id": project_id, "name": "eu-de"},
        }
    }
    return httpx.Response(201, json=body, headers={"X-Subject-Token": token})


def test_iam_fetch_is_bounded_by_the_events_deadline(emu: Emulator) -> None:
    """IAM gets what is left of the event's deadline, not its own 5 s: an IAM that hangs
    cannot make an event overrun its deadline (the emulator holds the token answer 3 s)."""
    emu.inject("issue_token", latency_seconds=3.0, times=1)
    auth = token_auth(f"{emu.url}/v3")
    started = time.monotonic()
    with (
        httpx.Client(auth=auth) as client,
        within(Deadline(0.5)),
        pytest.raises(UpstreamUnavailableError) as caught,
    ):
        client.get(instance_url(emu))
    elapsed = time.monotonic() - started
    auth.close()
    assert caught.value.timed_out is True
    assert re.fullmatch(r"IAM at 127\.0\.0\.1 did not answer within 0\.\d+ s", caught.value.message)
    assert elapsed < 3.0  # the 3 s delay, or the 5 s timeout, would have been waited out
    assert all(r.path == TOKEN_PATH for r in emu.requests())  # no API call went out


def test_iam_timeout_is_upstream_unavailable() -> None:
    def iam(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    auth = token_auth(
        "https://iam.example/v3",
        project_id=None,
        project_name="eu-de",
        transport=httpx.MockTransport(iam),
    )
    with pytest.raises(UpstreamUnavailableError) as caught:
        auth.project_id()
    assert caught.value.timed_out is True
    assert "iam.example" in str(caught.value)


def test_iam_connection_error_is_upstream_unavailable() -> None:
    def iam(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    auth = token_auth(
        "https://iam.example/v3",
        project_id=None,
        project_name="eu-de",
        transport=httpx.MockTransport(iam),
    )
    with pytest.raises(UpstreamUnavailableError) as caught:
        auth.project_id()
    assert caught.value.timed_out is False


def test_iam_5xx_is_upstream_unavailable() -> None:
    def iam(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>maintenance</html>")

    auth = token_auth(
        "https://iam.example/v3",
        project_id=None,
        project_name="eu-de",
        transport=httpx.MockTransport(iam),
    )
    with pytest.raises(UpstreamUnavailableError, match=r"\(503\): Service Unavailable"):
        auth.project_id()


def test_iam_201_without_token_header() -> None:
    def iam(request: httpx.Request) -> httpx.Response:
        response = iam_token_response()
        del response.headers["X-Subject-Token"]
        return response

    auth = token_auth(
        "https://iam.example/v3",
        project_id=None,
        project_name="eu-de",
        transport=httpx.MockTransport(iam),
    )
    with pytest.raises(AuthenticationError, match="without an X-Subject-Token"):
        auth.project_id()


def test_iam_message_that_echoes_the_password_is_scrubbed() -> None:
    def iam(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"error": {"code": 401, "message": f"bad password {PASSWORD}"}}
        )

    auth = token_auth(
        "https://iam.example/v3",
        project_id=None,
        project_name="eu-de",
        transport=httpx.MockTransport(iam),
    )
    with pytest.raises(AuthenticationError) as caught:
        auth.project_id()
    assert PASSWORD not in str(caught.value)
    assert str(caught.value).endswith("(401): bad password ***")


def test_401_race_invalidates_only_the_token_that_was_used() -> None:
    """Two requests sent with token A both get 401; only one new token is fetched."""
    issued: list[str] = []

    def iam(request: httpx.Request) -> httpx.Response:
        issued.append(f"tok-{len(issued) + 1}")
        return iam_token_response(issued[-1])

    auth = token_auth("https://iam.example/v3", transport=httpx.MockTransport(iam))
    first = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/a"))
    second = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/b"))
    sent_first, sent_second = next(first), next(second)
    assert sent_first.headers["X-Auth-Token"] == sent_second.headers["X-Auth-Token"] == "tok-1"

    rejected = httpx.Response(401, json={"error_code": "APIGW.0307"})
    assert first.send(rejected).headers["X-Auth-Token"] == "tok-2"
    assert second.send(rejected).headers["X-Auth-Token"] == "tok-2"
    assert issued == ["tok-1", "tok-2"]
    with pytest.raises(StopIteration):
        first.send(httpx.Response(200))
    auth.close()


def test_403_with_token_code_reauthenticates_but_other_403_does_not() -> None:
    issued: list[str] = []

    def iam(request: httpx.Request) -> httpx.Response:
        issued.append(f"tok-{len(issued) + 1}")
        return iam_token_response(issued[-1])

    auth = token_auth("https://iam.example/v3", transport=httpx.MockTransport(iam))
    flow = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/a"))
    next(flow)
    resent = flow.send(httpx.Response(403, json={"error_code": "DBS.280056"}))
    assert resent.headers["X-Auth-Token"] == "tok-2"

    flow = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/a"))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(403, json={"error_code": "DBS.200604"}))
    assert issued == ["tok-1", "tok-2"]
    auth.close()


def test_token_auth_needs_a_project() -> None:
    with pytest.raises(ValueError, match="project"):
        token_auth("https://iam.example/v3", project_id=None, project_name=None)


# --------------------------------------------------------------------------------------
# AkSkAuth

# Huawei's API signing guide ("Constructing a Standard Request" / "Creating a To-Be-Signed
# String" / "Calculating the Signature"): a GET of /v1/{project}/vpcs?limit=2&marker=… signed
# with content-type, host and x-sdk-date.
VECTOR_AK = "QTWAOYTTINDUT2QVKYUC"
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_DATE = "20191115T033655Z"
VECTOR_URL = (
    "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
    "?marker=13551d6b-755d-4757-b956-536f674975c0&limit=2"
)
VECTOR_CANONICAL = (
    "GET\n"
    "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n"
    "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n"
    "content-type:application/json\n"
    "host:service.region.example.com\n"
    "x-sdk-date:20191115T033655Z\n"
    "\n"
    "content-type;host;x-sdk-date\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
VECTOR_STRING_TO_SIGN = (
    "SDK-HMAC-SHA256\n20191115T033655Z\n"
    "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
)
VECTOR_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_published_vector_signature() -> None:
    assert sign_string(VECTOR_SK, VECTOR_STRING_TO_SIGN) == VECTOR_SIGNATURE


def test_published_vector_canonical_request_and_string_to_sign() -> None:
    request = httpx.Request(
        "GET", VECTOR_URL, headers={"Content-Type": "application/json", "X-Sdk-Date": VECTOR_DATE}
    )
    signed = signed_header_names(request.headers.keys())
    assert signed == ["content-type", "host", "x-sdk-date"]
    canonical = canonical_request(request, signed)
    assert canonical == VECTOR_CANONICAL
    assert string_to_sign(VECTOR_DATE, canonical) == VECTOR_STRING_TO_SIGN


def test_authorization_header_shape() -> None:
    auth = AkSkAuth(
        access_key=VECTOR_AK,
        secret_key=VECTOR_SK,
        project_id=PROJECT_ID,
        clock=fixed_clock(datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)),
    )
    request = httpx.Request("GET", VECTOR_URL, headers={"Content-Type": "application/json"})
    signed_request = next(auth.sync_auth_flow(request))
    header = signed_request.headers["Authorization"]
    assert header.startswith(
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature="
    )
    assert len(header.rsplit("Signature=", 1)[1]) == 64
    assert signed_request.headers["X-Sdk-Date"] == VECTOR_DATE
    assert signed_request.headers["X-Project-Id"] == PROJECT_ID


def test_signature_of_a_small_post_built_by_hand() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    auth = AkSkAuth(
        access_key="AK123",
        secret_key="SK456",
        project_id=PROJECT_ID,
        security_token="sts-token",
        clock=fixed_clock(moment),
    )
    body = b'{"instance_id":"x","name":"a b"}'
    request = httpx.Request(
        "POST",
        f"https://gaussdb-mysql.eu-de.otc.t-systems.com/v3/{PROJECT_ID}/backups/create"
        "?b=2&a=x%20y&a=1",
        content=body,
        headers={"Content-Type": "application/json", "Connection": "keep-alive"},
    )
    sent = next(auth.sync_auth_flow(request))

    body_hash = hashlib.sha256(body).hexdigest()
    canonical = (
        "POST\n"
        f"/v3/{PROJECT_ID}/backups/create/\n"
        "a=1&a=x%20y&b=2\n"
        "content-type:application/json\n"
        "host:gaussdb-mysql.eu-de.otc.t-systems.com\n"
        f"x-project-id:{PROJECT_ID}\n"
        "x-sdk-date:20240506T070809Z\n"
        "x-security-token:sts-token\n"
        "\n"
        "content-type;host;x-project-id;x-sdk-date;x-security-token\n"
        f"{body_hash}"
    )
    to_sign = "SDK-HMAC-SHA256\n20240506T070809Z\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected_signature = sign_string("SK456", to_sign)
    assert sent.headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AK123, SignedHeaders=content-type;host;"
        f"x-project-id;x-sdk-date;x-security-token, Signature={expected_signature}"
    )
    assert sent.headers["X-Security-Token"] == "sts-token"


def test_canonical_uri_encodes_each_segment_and_keeps_tilde() -> None:
    request = httpx.Request("DELETE", "https://h.example/v3/p/backups/a%2Fb%20c~d")
    canonical = canonical_request(request, ["host"])
    assert canonical.splitlines()[1] == "/v3/p/backups/a%2Fb%20c~d/"


def test_signing_through_a_client_signs_what_is_sent() -> None:
    """httpx adds its own headers before the flow runs; the minimal set of them is signed
    (the official SDK's, without User-Agent), nothing a proxy rewrites."""
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    auth = AkSkAuth(access_key="AK", secret_key="SK", project_id=PROJECT_ID)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as client:
        client.post("https://api.example:8443/v3/x", json={"a": 1}, headers={"X-Language": "en-us"})
    sent = seen[0]
    header = sent.headers["Authorization"]
    signed = header.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    assert signed == ["content-type", "host", "x-project-id", "x-sdk-date"]
    assert {"accept-encoding", "user-agent", "content-length", "x-language"} <= {
        name.lower() for name in sent.headers
    }
    assert sent.headers["Host"] == "api.example:8443"
    # Recompute from the request as the server received it.
    date = sent.headers["X-Sdk-Date"]
    expected = sign_string("SK", string_to_sign(date, canonical_request(sent, signed)))
    assert header.endswith(f"Signature={expected}")
    assert json.loads(sent.content) == {"a": 1}
