"""`python -m tools.invoke`: a sample, signed with the configured secret, in-process or by HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from emulator import Emulator
from helpers import ROOT, SAMPLES, WEBHOOK_SECRET, WEBHOOK_TOKEN, creates, env_fixture
from tools import localenv
from tools.invoke import build_request, fresh, main, prepare, send, summary, unwrap
from tools.serve import free_port, function_server

SAMPLE = SAMPLES / "generic-pre-deploy.json"


env = env_fixture(CALLBACK_ALLOWED_HOSTS=None, WEBHOOK_TOKEN=None)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """The generic sample without its callback URL (that host does not exist here)."""
    document = json.loads(SAMPLE.read_text())
    del document["callback_url"]
    path = tmp_path / "pre-deploy.json"
    path.write_text(json.dumps(document, indent=2))
    return path


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
    assert len(creates(emu)) == 1


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
    assert len(creates(emu)) == 1


def test_refusal_exits_1_and_prints_the_answer(
    env: dict[str, str], emu: Emulator, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample), "--header", "webhook-signature:v1,Zm9yZ2Vk"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("HTTP 401\n")
    assert json.loads(out.partition("\n")[2])["error"] == "unauthorized"
    assert len(creates(emu)) == 0


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
    assert len(creates(emu)) == 1
    assert WEBHOOK_SECRET not in result.stdout + result.stderr


def test_unreachable_url_is_reported(
    sample: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    assert main([str(sample), "--url", f"http://127.0.0.1:{free_port()}/"]) == 2
    assert "cannot reach" in capsys.readouterr().err


# --- each sender signed the way it signs --------------------------------------------------
# Shapes and headers: events/samples (each sample's source is in tests/test_sources_*.py);
# the expected signatures are computed here from the senders' documentation.

GITHUB = "github-secret-for-invoke"


def test_github_sample_carries_githubs_hmac_of_the_exact_body() -> None:
    """GitHub docs, "Validating webhook deliveries": X-Hub-Signature-256 = sha256=HMAC(body)."""
    sample = SAMPLES / "github-deployment.json"
    now = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    prepared = prepare(sample, {"GITHUB_WEBHOOK_SECRET": GITHUB}, now=now)
    assert prepared.sender == "github" and prepared.entry == "webhook"
    expected = hmac.new(GITHUB.encode(), prepared.body, hashlib.sha256).hexdigest()
    assert prepared.headers["X-Hub-Signature-256"] == f"sha256={expected}"
    # no callback option: the sample as it is, but for its send times, moved to now
    sent = json.loads(prepared.body)
    assert sent["deployment"]["created_at"] == "2027-01-02T03:04:05Z"
    assert sent == fresh(json.loads(sample.read_bytes()), now)


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("pubsub-push", ("message", "publishTime")),
        ("gitlab-deployment", ("status_changed_at",)),
        ("cloudevents-structured", ("time",)),
        ("functiongraph-kafka", ("event_time",)),
    ],
)
def test_samples_are_sent_as_made_now(name: str, path: tuple[str, ...]) -> None:
    """The samples are dated; the function refuses what is older than its window."""
    now = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    prepared = prepare(SAMPLES / f"{name}.json", {"GITLAB_WEBHOOK_TOKEN": "t"}, now=now)
    value: Any = json.loads(prepared.body)
    for key in path:
        value = value[key]
    assert str(value).startswith(("2027-01-02", str(int(now.timestamp())))), value


def test_gitlab_sample_carries_the_token_and_with_a_signing_token_a_signature() -> None:
    sample = SAMPLES / "gitlab-deployment.json"
    signing = "whsec_" + base64.b64encode(b"gitlab-signing-key-0123456789").decode()
    prepared = prepare(
        sample, {"GITLAB_WEBHOOK_TOKEN": "tok-1", "GITLAB_WEBHOOK_SIGNING_TOKEN": signing}
    )
    assert prepared.headers["X-Gitlab-Token"] == "tok-1"
    # GitLab's webhook-id is the delivery's Idempotency-Key
    assert prepared.headers["webhook-id"] == prepared.headers["Idempotency-Key"]
    Webhook(signing).verify(prepared.body.decode(), prepared.headers)


def test_apig_sample_signs_the_wrapped_request(tmp_path: Path) -> None:
    prepared = prepare(
        SAMPLES / "functiongraph-apig.json",
        {"WEBHOOK_SECRET": WEBHOOK_SECRET},
        callback_url="http://127.0.0.1:9/hooks/backup",
    )
    assert (prepared.sender, prepared.entry, prepared.path) == (
        "functiongraph-apig",
        "event",
        "/invoke",
    )
    wrapper = json.loads(prepared.body)
    inner = base64.b64decode(wrapper["body"])
    assert json.loads(inner)["callback_url"] == "http://127.0.0.1:9/hooks/backup"
    Webhook(WEBHOOK_SECRET).verify(inner.decode(), wrapper["headers"])


def test_queue_samples_go_to_the_event_entry_point_unsigned() -> None:
    for name, sender in [
        ("pubsub-push", "pubsub"),
        ("cloudevents-binary", "cloudevents"),
        ("functiongraph-timer", "functiongraph"),
    ]:
        prepared = prepare(SAMPLES / f"{name}.json", {"WEBHOOK_SECRET": WEBHOOK_SECRET})
        assert (prepared.sender, prepared.entry) == (sender, "event"), name
        assert "webhook-signature" not in prepared.headers, name


def test_callback_option_moves_every_callback_also_inside_base64() -> None:
    target = "http://127.0.0.1:9/cb"
    for name in ("pubsub-push", "functiongraph-kafka", "cloudevents-batch", "generic-pre-deploy"):
        prepared = prepare(SAMPLES / f"{name}.json", {}, callback_url=target)
        assert "ci.example.com/hooks" not in _deep_text(prepared.body), name
        assert target in _deep_text(prepared.body), name


def _deep_text(body: bytes) -> str:
    """The body with base64 parts decoded, to search for a URL wherever it sits."""
    text = body.decode()
    for part in re.findall(r'"([A-Za-z0-9+/=]{40,})"', text):
        text += base64.b64decode(part).decode(errors="replace")
    return text


def test_smn_sample_without_the_emulator_is_a_clear_client_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMN_ENDPOINT", raising=False)
    assert main([str(SAMPLES / "smn-notification.json")]) == 2
    assert "set SMN_ENDPOINT to the emulator's URL" in capsys.readouterr().err


def test_smn_sample_is_signed_by_the_emulator_and_accepted(
    env: dict[str, str],
    emu: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMN_ENDPOINT", emu.url)
    monkeypatch.setenv("SMN_TOPIC_URNS", json.load(SMN.open())["topic_urn"])
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
    code = main([str(SMN), "--callback-url", "http://127.0.0.1:9/hooks/backup"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    assert captured.out.startswith("HTTP 202\n")
    assert len(creates(emu)) == 1


SMN = SAMPLES / "smn-notification.json"


def test_a_plain_secret_gets_the_servers_message_not_a_base64_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "my-plain-secret")
    assert main([str(SAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "WEBHOOK_SECRET must be a Standard Webhooks secret: whsec_ followed by" in err
    assert "base64-encoded" not in err and "Traceback" not in err
    assert "my-plain-secret" not in err


def test_no_record_ended_well_exits_1(
    env: dict[str, str],
    emu: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A queue delivery answered 200 whose only record failed is a failure for the user."""
    monkeypatch.setenv("ALLOWED_INSTANCES", "5f2d9a4c8e7b4b1da3c60f9e2b7d1a84in07")
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
    code = main([str(SAMPLES / "pubsub-push.json"), "--callback-url", "http://127.0.0.1:9/cb"])
    captured = capsys.readouterr()
    assert captured.out.startswith("HTTP 200\n")
    assert code == 1
    assert "record 0: failed: forbidden" in captured.err
    assert len(creates(emu)) == 0


def test_several_samples_report_each_and_a_total(
    env: dict[str, str], emu: Emulator, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample), str(sample.with_name("missing.json"))]) == 2
    captured = capsys.readouterr()
    assert f"== {sample}" in captured.out
    assert "invoke: 1 of 2 ended well" in captured.err
    assert len(creates(emu)) == 1


def test_get_status_endpoint_in_process(
    env: dict[str, str], emu: Emulator, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(sample)]) == 0
    job_id = json.loads(capsys.readouterr().out.partition("\n")[2])["job_id"]
    assert main(["--get", f"/jobs/{job_id}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("HTTP 200\n")
    assert json.loads(out.partition("\n")[2])["job"]["id"] == job_id


def test_dotenv_is_read_by_invoke(
    env: dict[str, str],
    emu: Emulator,
    sample: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"WEBHOOK_SECRET={WEBHOOK_SECRET}\n")
    monkeypatch.delenv("WEBHOOK_SECRET")
    monkeypatch.setattr(localenv, "DOTENV", dotenv)
    assert main([str(sample)]) == 0
    assert capsys.readouterr().out.startswith("HTTP 202\n")


def test_apig_answer_is_read_from_its_status_code(
    env: dict[str, str], emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APIG answers 200 {"statusCode": 401, ...} for a refused wrapped request: that is a 401."""
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
    wrong = "whsec_" + base64.b64encode(b"not-the-functions-secret-0123").decode()
    # the sender signs with another secret than the function's WEBHOOK_SECRET
    prepared = prepare(
        SAMPLES / "functiongraph-apig.json",
        {"WEBHOOK_SECRET": wrong},
        callback_url="http://127.0.0.1:9/cb",
    )
    answer = send(prepared.body, prepared.headers, target="event", path="/invoke")
    assert answer.status == 200
    assert unwrap(answer).status == 401
    good, lines = summary(unwrap(answer))
    assert not good and "failed: unauthorized" in lines[0]
    assert len(creates(emu)) == 0


def test_callback_failure_is_reported(
    env: dict[str, str],
    emu: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nobody listens at the callback URL: the backup is made, the summary says the callback
    was not delivered."""
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("CALLBACK_RETRY_SECONDS", "0")
    code = main([str(SAMPLE), "--callback-url", f"http://127.0.0.1:{free_port()}/cb"])
    err = capsys.readouterr().err
    assert code == 0
    assert "made now" in err and "callback NOT delivered" in err
    assert len(creates(emu)) == 1
