"""No secret leaves: every configured secret, IAM token and signature is scanned for in the
function's log lines and in every response, across a battery of requests built to provoke
echoes (secrets in ids, names, field names, headers, URLs, failing upstream calls), in password
and in AK/SK mode, and against a real functions-framework server for the framework's own pages.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from config import load_settings
from emulator import Emulator, EmulatorConfig
from emulator.receiver import CallbackReceiver
from helpers import (
    CALLBACK_SECRET,
    INSTANCE,
    ROOT,
    WEBHOOK_TOKEN,
    env_fixture,
    event,
    function_env,
    make_client,
    server_env,
    sign,
)

GITHUB_SECRET = "github-webhook-secret-9c1e7f0a"
GITLAB_TOKEN = "gitlab-webhook-token-5d2b8e4f"
SECURITY_TOKEN = EmulatorConfig().security_token
IAM_TOKEN = re.compile(r"MIIT[A-Za-z0-9_-]{16,}")
SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/=]{40,}|Signature=[0-9a-f]{64}")


MORE_SECRETS = {
    "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
    "GITLAB_WEBHOOK_TOKEN": GITLAB_TOKEN,
    "OS_SECURITY_TOKEN": SECURITY_TOKEN,  # configured, even if unused in password mode
}
env = env_fixture(**MORE_SECRETS)


def all_secrets_env(api_url: str) -> dict[str, str]:
    return {**function_env(api_url), **MORE_SECRETS}


def configured_secrets() -> list[str]:
    """What the function itself considers secret, read from the environment as it is now."""
    return load_settings().secret_values()


def battery(client: FlaskClient, secrets: list[str], callback_url: str) -> list[str]:
    """Requests that try to make the function echo; returns every response, headers included."""
    texts: list[str] = []

    def send(body: bytes, headers: dict[str, str]) -> None:
        response = client.post("/", data=body, headers=headers)
        assert response.status_code < 500, response.get_data(as_text=True)
        header_text = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        texts.append(header_text + "\n" + response.get_data(as_text=True))

    body = event(callback_url=callback_url)
    send(body, sign(body))
    send(body, {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"})
    for number, secret in enumerate(secrets):
        # The secret as the event id (echoed as trigger_id), name, description, field name.
        instance = f"{number + 1:032x}in07"
        for fields in (
            {"id": secret, "instance_id": instance},
            {"name": secret},
            {"description": secret},
            {secret: "x"},
            {"callback_url": f"https://user:{secret}@ci.example.com/hook"},
            {"callback_url": f"https://169.254.169.254/?token={secret}"},
        ):
            body = event(**fields)
            send(body, sign(body))
        # The secret in headers: a bearer token that is almost right, signatures, ids.
        body = event()
        send(body, {"Content-Type": "application/json", "Authorization": f"Bearer {secret}x"})
        basic = base64.b64encode(f"user:{secret}".encode()).decode()
        send(body, {"Content-Type": "application/json", "Authorization": f"Basic {basic}"})
        send(body, {**sign(body), "webhook-signature": f"v1,{secret}"})
        send(body, {**sign(body), "webhook-id": secret, "Function-Execution-Id": secret})
        send(body, {**sign(body), "X-Request-Id": secret, "X-CFF-Request-Id": secret})
        send(body, {**sign(body), "webhook-timestamp": secret})
        send(secret.encode(), {**sign(secret.encode()), "X-Request-Id": secret})
    return texts


def assert_clean(texts: list[str], secrets: list[str], where: str) -> None:
    assert secrets, "nothing to look for"
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a configured secret appears in {where}"
            assert json.dumps(secret)[1:-1] not in text
        assert IAM_TOKEN.search(text) is None, f"an IAM token appears in {where}"


def test_password_mode_leaks_nothing(
    env: dict[str, str],
    receiver: CallbackReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secrets = configured_secrets()
    assert len(secrets) >= 8
    texts = battery(make_client(), secrets, receiver.url + "/hook")

    logs = capsys.readouterr().err
    assert '"outcome": "backup_started"' in logs  # the trigger's outcome line was written
    assert "[redacted]" in logs  # the battery did put secrets where logs would show them
    assert_clean(texts, secrets, "a response")
    assert_clean([logs], secrets, "the log")
    assert SIGNATURE.search(logs) is None, "a signature appears in the log"
    callback = receiver.wait_for(1)[0]
    assert callback.headers["webhook-signature"] not in logs


def test_aksk_mode_leaks_nothing(
    env: dict[str, str],
    receiver: CallbackReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = EmulatorConfig()
    monkeypatch.setenv("OS_ACCESS_KEY", config.temporary_access_key)
    monkeypatch.setenv("OS_SECRET_KEY", config.temporary_secret_key)
    secrets = configured_secrets()
    assert config.temporary_secret_key in secrets and SECURITY_TOKEN in secrets
    texts = battery(make_client(), secrets, receiver.url + "/hook")
    logs = capsys.readouterr().err
    assert '"outcome": "backup_started"' in logs
    assert_clean([*texts, logs], secrets, "a response or the log")
    assert "SDK-HMAC-SHA256" not in logs and SIGNATURE.search(logs) is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OS_PASSWORD", "wrong-password-for-the-leak-test"),
        ("OS_SECRET_KEY", "wrong-secret-key-for-the-leak-test"),
    ],
)
def test_failing_upstream_calls_leak_nothing(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    if variable == "OS_SECRET_KEY":
        monkeypatch.setenv("OS_ACCESS_KEY", EmulatorConfig().access_key)
    monkeypatch.setenv(variable, value)
    body = event()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 502
    text = response.get_data(as_text=True) + capsys.readouterr().err
    assert_clean([text], configured_secrets(), "a failure report")
    assert value not in text


def test_configuration_errors_name_variables_not_values(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "whsec_" + "A" * 8 + " " + "s3cret-in-a-broken-setting"
    monkeypatch.setenv("WEBHOOK_SECRET", bad)
    body = event()
    response = make_client().post("/", data=body, headers=sign(body))
    text = response.get_data(as_text=True) + capsys.readouterr().err
    assert response.status_code == 500
    assert "WEBHOOK_SECRET" in text
    assert "s3cret-in-a-broken-setting" not in text and "A" * 8 not in text


# --------------------------------------------------------------------------------------
# A real server and its own error pages: server.py (waitress, as the image and bootstrap start
# it) and functions-framework (gunicorn, the local way)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module", params=["server", "functions_framework"])
def server(
    _emulator_process: Emulator,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Any]:
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "function.log"
    env = server_env(_emulator_process.url, **MORE_SECRETS)
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                request.param,
                "--target=webhook",
                f"--source={ROOT / 'main.py'}",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.1)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


MALFORMED = [
    b"GET /a b c HTTP/1.1\r\nX-Value: {marker}\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nBad Header: {marker}\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nX-Value: a\x00{marker}\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {marker}\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\nX: {marker}\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer {marker}"
    b"\r\nContent-Type: application/json\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Request-Id: {marker}"
    b"\r\nContent-Type: application/json\r\n\r\n5\r\nabcdefgh\r\n0\r\n\r\n",
    b"TRACE / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {marker}\r\nX-Value: {marker}\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\nX-Value: {marker}\r\n\r\n",
    b"POST /robots.txt HTTP/1.1\r\nHost: x\r\nX-Value: {marker}\r\nContent-Length: 0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Value: {marker}\r\n"
    b"Content-Length: 2\r\n\r\n{{}}",
    b"POST / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"m" * 9000 + b"{marker}\r\n\r\n",
    b"POST / HTTP/1.1\r\n" + b"X-Many: {marker}\r\n" * 200 + b"\r\n",
    b"POST / HTTP/9.9\r\nX-Value: {marker}\r\n\r\n",
]


@pytest.mark.parametrize("template", MALFORMED)
def test_framework_pages_echo_no_header_value(server: Any, template: bytes) -> None:
    port, _ = server
    for marker in ("hv-4f9a1c-marker", WEBHOOK_TOKEN, CALLBACK_SECRET):
        answer = raw(port, template.replace(b"{marker}", marker.encode()))
        # HTTP/1.0 from waitress when the request line is unreadable: its version is unknown.
        assert answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), answer[:100]
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, answer[:400]
        assert marker.encode() not in answer


def test_real_server_log_holds_no_secret(server: Any, emu: Emulator) -> None:
    port, log = server
    body = event(id=WEBHOOK_TOKEN, instance_id=INSTANCE)
    headers = "".join(f"{name}: {value}\r\n" for name, value in sign(body).items())
    request = (
        f"POST / HTTP/1.1\r\nHost: x\r\n{headers}X-Request-Id: {CALLBACK_SECRET}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    answer = raw(port, request)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
    assert WEBHOOK_TOKEN.encode() not in answer
    time.sleep(0.2)  # let the worker flush its log line
    text = Path(log).read_text()
    assert '"outcome": "backup_started"' in text
    secrets = [*all_secrets_env("http://x").values()]
    for secret in (WEBHOOK_TOKEN, CALLBACK_SECRET, GITHUB_SECRET, GITLAB_TOKEN, SECURITY_TOKEN):
        assert secret in secrets and secret not in text
    assert IAM_TOKEN.search(text) is None
