"""`python -m tools.invoke`: a sample, signed with the configured secret, in-process or by HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from emulator import Emulator
from helpers import ROOT, SAMPLES, WEBHOOK_SECRET, WEBHOOK_TOKEN, function_env
from tools.invoke import build_request, main
from tools.serve import free_port, function_server

SAMPLE = SAMPLES / "generic-pre-deploy.json"


@pytest.fixture
def env(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = function_env(emu.url)
    values.pop("CALLBACK_ALLOWED_HOSTS")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WEBHOOK_TOKEN", raising=False)
    return values


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """The generic sample without its callback URL (that host does not exist here)."""
    document = json.loads(SAMPLE.read_text())
    del document["callback_url"]
    path = tmp_path / "pre-deploy.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def creates(emu: Emulator) -> int:
    return sum(1 for r in emu.requests() if r.path.endswith("/backups/create"))


def test_signs_the_exact_bytes_with_standard_webhooks() -> None:
    now = datetime.now(tz=UTC)
    body, headers, warnings = build_request(
        SAMPLE, {"WEBHOOK_SECRET": WEBHOOK_SECRET}, message_id="msg_1", now=now
    )
    assert body == SAMPLE.read_bytes()
    assert warnings == []
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    Webhook(WEBHOOK_SECRET).verify(body.decode(), headers)  # raises when it does not verify
    assert "Authorization" not in headers


def test_bearer_token_when_no_secret_and_a_warning_when_neither() -> None:
    _, headers, warnings = build_request(SAMPLE, {"WEBHOOK_TOKEN": WEBHOOK_TOKEN})
    assert headers["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert warnings == []
    _, headers, warnings = build_request(SAMPLE, {})
    assert set(headers) == {"Content-Type"}
    assert "unsigned" in warnings[0]


def test_sibling_headers_file_and_overrides(tmp_path: Path) -> None:
    sample = tmp_path / "ce-binary.json"
    sample.write_bytes(b'{"event": "pre-deploy"}')
    (tmp_path / "ce-binary.headers.json").write_text(
        json.dumps({"ce-type": "dev.predeploy.pre-deploy", "content-type": "text/plain"})
    )
    _, headers, _ = build_request(
        sample,
        {"WEBHOOK_TOKEN": "t0ken"},
        ["ce-type: other.type", "Authorization:", "X-Extra:1"],
    )
    assert headers == {"content-type": "text/plain", "ce-type": "other.type", "X-Extra": "1"}


def test_bad_header_argument_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SAMPLE), "--header", "no-colon"]) == 2
    assert "expected NAME:VALUE" in capsys.readouterr().err


def test_in_process_invoke_creates_the_backup(
    env: dict[str, str], emu: Emulator, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample)]) == 0
    out = capsys.readouterr().out
    status, _, text = out.partition("\n")
    assert status == "HTTP 202"
    answer = json.loads(text)
    assert answer["trigger_id"] == "deploy-4711"
    assert answer["backup"]["name"] == "backup-1"
    assert creates(emu) == 1


def test_in_process_invoke_with_bearer_token(
    env: dict[str, str],
    emu: Emulator,
    sample: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    assert main([str(sample)]) == 0
    assert capsys.readouterr().out.startswith("HTTP 202\n")
    assert creates(emu) == 1


def test_refusal_exits_1_and_prints_the_answer(
    env: dict[str, str], emu: Emulator, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample), "--header", "webhook-signature:v1,Zm9yZ2Vk"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("HTTP 401\n")
    assert json.loads(out.partition("\n")[2])["error"] == "unauthorized"
    assert creates(emu) == 0


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    with function_server(dict(os.environ)) as url:
        yield url


def test_invoke_a_running_function_from_the_command_line(
    server: str, emu: Emulator, sample: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.invoke", str(sample), "--url", server],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP 202\n")
    assert json.loads(result.stdout.partition("\n")[2])["job_id"]
    assert creates(emu) == 1
    assert WEBHOOK_SECRET not in result.stdout + result.stderr


def test_unreachable_url_is_reported(
    sample: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    assert main([str(sample), "--url", f"http://127.0.0.1:{free_port()}/"]) == 2
    assert "cannot reach" in capsys.readouterr().err
