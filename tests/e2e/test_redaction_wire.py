"""Credentials seen on the wire are redacted in answers and logs, even quoted inside an upstream
message (issue #10, item 5). Against the function under a real server; the emulator is made
to echo the request's credential headers in its error message (fault injection), as a
gateway that quotes what it refused does.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from emulator import Emulator, EmulatorConfig
from helpers import event, server_env, sign
from tools.serve import function_server

CONFIG = EmulatorConfig()


@pytest.fixture
def logfile() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "server.log"


def pieces(secret: str, size: int = 12) -> list[str]:
    """Every stretch of ``size`` characters of ``secret``: none may appear, not even cut."""
    return [secret[i : i + size] for i in range(0, len(secret) - size + 1)]


def leaked(secret: str, *texts: str) -> list[str]:
    return [piece for piece in pieces(secret) for text in texts if piece in text]


def create_fails_echoing(emu: Emulator, message: str) -> None:
    emu.inject("create_backup", status=400, error_code="DBS.280001", error_msg=message)


@pytest.mark.parametrize(
    "message",
    [
        "Invalid token {header:x-auth-token} in request",
        # long enough that capping the message would cut the token in half
        "x" * 170 + " token={header:x-auth-token}",
        '{"message": "token \\"{header:x-auth-token}\\" refused"}',
    ],
    ids=["quoted", "cut-by-the-cap", "json-inside"],
)
def test_iam_token_echoed_by_the_api_is_redacted(
    emu: Emulator, logfile: Path, message: str
) -> None:
    create_fails_echoing(emu, message)
    env = server_env(emu.url)
    with logfile.open("w") as log, function_server(env, log=log) as url:
        body = event()
        response = httpx.post(url, content=body, headers=sign(body), timeout=15)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error_code"] == "DBS.280001"
    assert "[redacted]" in answer["error_msg"]
    (token,) = emu.state.token_values()  # the one token the function was issued
    logs = logfile.read_text()
    assert "DBS.280001" in logs  # the failure was logged…
    assert leaked(token, response.text, logs) == []  # …without the token, whole or in part


def test_aksk_authorization_echoed_by_the_api_is_redacted(emu: Emulator, logfile: Path) -> None:
    create_fails_echoing(emu, "Signature check failed for {header:authorization}")
    env = server_env(emu.url)
    del env["OS_PASSWORD"], env["OS_USERNAME"]
    env.update(OS_ACCESS_KEY=CONFIG.access_key, OS_SECRET_KEY=CONFIG.secret_key)
    with logfile.open("w") as log, function_server(env, log=log) as url:
        body = event()
        response = httpx.post(url, content=body, headers=sign(body), timeout=15)
    assert response.status_code == 400, response.text
    assert response.json()["error_msg"] == "Signature check failed for [redacted]"
    logs = logfile.read_text()
    assert "Signature check failed for [redacted]" in logs
    for secret in (CONFIG.access_key, CONFIG.secret_key):
        assert leaked(secret, response.text, logs) == []
    assert "SDK-HMAC-SHA256" not in response.text + logs  # no part of the header at all


def test_bearer_token_quoted_by_upstream_is_redacted(emu: Emulator, logfile: Path) -> None:
    """A credential the function never saw (another system's): redacted by its shape."""
    foreign = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJl"
    create_fails_echoing(emu, f"upstream said: {foreign}")
    env = server_env(emu.url)
    with logfile.open("w") as log, function_server(env, log=log) as url:
        body = event()
        response = httpx.post(url, content=body, headers=sign(body), timeout=15)
    assert response.json()["error_msg"] == "upstream said: Bearer [redacted]"
    assert leaked(foreign.removeprefix("Bearer "), response.text, logfile.read_text()) == []
