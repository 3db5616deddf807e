"""predeploy-gate's parts: signing (checked with the standardwebhooks library the function
verifies with), the trigger id per CI system, Retry-After, retries over a real socket."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from helpers import INSTANCE, WEBHOOK_SECRET
from predeploy_gate import ci, cli, signing
from predeploy_gate.transport import Deadline, GaveUp, Transport, retry_after_seconds


def test_signature_verifies_with_the_standardwebhooks_library() -> None:
    body = b'{"event":"pre-deploy","id":"d-1"}'
    headers = signing.sign_headers(signing.decode_secret(WEBHOOK_SECRET), body, "msg_1")
    Webhook(WEBHOOK_SECRET).verify(body.decode(), headers, json_parse=False)  # raises if wrong


def test_signature_of_an_empty_status_get_verifies_and_binds_the_body() -> None:
    key = signing.decode_secret(WEBHOOK_SECRET)
    headers = signing.sign_headers(key, b"", "msg_2")
    Webhook(WEBHOOK_SECRET).verify("", headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify("{}", headers, json_parse=False)


@pytest.mark.parametrize(
    ("secret", "rule"),
    [
        ("hunter2", "must start with whsec_"),
        ("whsec_***", "not valid base64"),
        ("whsec_", "empty"),
    ],
)
def test_bad_secret_is_a_usage_error_that_never_shows_it(secret: str, rule: str) -> None:
    err = io.StringIO()
    code = cli.main(
        ["--url", "http://127.0.0.1:9/", "--instance", INSTANCE, "--id", "x"],
        {"PREDEPLOY_WEBHOOK_SECRET": secret},
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == cli.EXIT_USAGE
    assert rule in err.getvalue() and "PREDEPLOY_WEBHOOK_SECRET" in err.getvalue()
    assert (secret[6:] or "\x00") not in err.getvalue().replace("whsec_", "")


# Variables per research/pipelines.md §0.1 (GitHub variables.md, GitLab predefined_variables.md,
# Azure build/variables.md, Jenkins "Using environment variables"); the attempt counters are set
# to show that they are left out.
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_REPOSITORY": "acme/shop",
                "GITHUB_RUN_ID": "42",
                "GITHUB_JOB": "migrate",
                "GITHUB_RUN_ATTEMPT": "3",
            },
            "github:acme/shop:42:migrate",
        ),
        (
            {
                "GITLAB_CI": "true",
                "CI_PROJECT_ID": "7",
                "CI_PIPELINE_ID": "1001",
                "CI_JOB_NAME": "backup",
                "CI_JOB_ID": "55501",
            },
            "gitlab:7:1001:backup",
        ),
        (
            {
                "TF_BUILD": "True",
                "BUILD_BUILDID": "812",
                "SYSTEM_STAGENAME": "deploy",
                "SYSTEM_JOBNAME": "backup",
                "SYSTEM_JOBATTEMPT": "2",
            },
            "azure:812:deploy:backup",
        ),
        (
            {
                "JENKINS_URL": "https://ci/",
                "BUILD_TAG": "jenkins-shop-17",
                "STAGE_NAME": "backup",
                "BUILD_NUMBER": "17",
            },
            "jenkins:jenkins-shop-17:backup",
        ),
    ],
)
def test_trigger_id_per_ci_system_leaves_the_attempt_out(
    env: dict[str, str], expected: str
) -> None:
    found, origin = ci.trigger_id(env)
    assert found == expected
    assert origin.startswith("from ")


def test_trigger_id_names_what_is_missing() -> None:
    assert ci.trigger_id({"GITLAB_CI": "true", "CI_PROJECT_ID": "7"}) == (
        None,
        "gitlab CI detected but CI_PIPELINE_ID, CI_JOB_NAME not set: pass --id",
    )
    assert ci.trigger_id({})[0] is None


def test_long_trigger_id_fits_the_function_limit_and_stays_distinct() -> None:
    one, two = ci.fit("x" * 300 + "a"), ci.fit("x" * 300 + "b")
    assert len(one) == len(two) == ci.MAX_ID and one != two
    assert ci.fit("short") == "short"


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(later, now) == 90.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


class _Script(BaseHTTPRequestHandler):
    """Answers from a list, one per request: (status, headers, body)."""

    answers: ClassVar[list[tuple[int, dict[str, str], dict[str, Any]]]] = []
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body = type(self).answers.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Script]]]:
    handler = type("Handler", (_Script,), {"answers": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def test_transport_honours_retry_after_then_returns_the_answer(
    scripted: tuple[str, type[_Script]],
) -> None:
    url, handler = scripted
    handler.answers = [
        (503, {"Retry-After": "4"}, {"error": "instance_busy"}),
        (429, {"Retry-After": "2"}, {}),
        (202, {}, {"ok": True}),
    ]
    slept: list[float] = []
    transport = Transport(user_agent="t", sleep=slept.append)
    answer = transport.send("POST", url, b"{}", lambda: {"X-Try": "1"}, Deadline(60))
    assert (answer.status, answer.body) == (202, {"ok": True})
    assert slept == [4.0, 2.0]
    assert len(handler.seen) == 3


def test_transport_gives_up_when_retry_after_passes_the_deadline(
    scripted: tuple[str, type[_Script]],
) -> None:
    url, handler = scripted
    handler.answers = [(504, {"Retry-After": "120"}, {"error": "upstream_unavailable"})]
    slept: list[float] = []
    with pytest.raises(GaveUp) as caught:
        Transport(user_agent="t", sleep=slept.append).send("POST", url, b"{}", dict, Deadline(30))
    assert "HTTP 504 (upstream_unavailable)" in caught.value.last
    assert slept == [] and len(handler.seen) == 1


def test_polling_signs_each_status_get_and_reports_progress_in_ci_logs(
    scripted: tuple[str, type[_Script]],
) -> None:
    """A fake function (the shapes of main.py's answers): 202 RUNNING, then two polls."""
    url, handler = scripted
    backup = {"id": "b1", "status": "BUILDING"}
    handler.answers = [
        (
            202,
            {},
            {
                "status": "RUNNING",
                "backup": backup,
                "job_id": "j1",
                "instance_id": INSTANCE,
                "trigger_id": "d-9",
            },
        ),
        (200, {}, {"status": "RUNNING", "backup": backup}),
        (200, {}, {"status": "SUCCEEDED", "backup": {**backup, "status": "COMPLETED"}}),
    ]
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["--url", url, "--instance", INSTANCE, "--id", "d-9", "--wait", "--json"],
        {"PREDEPLOY_WEBHOOK_SECRET": WEBHOOK_SECRET},
        stdout=out,
        stderr=err,
        sleep=lambda _: None,
    )
    assert code == cli.EXIT_OK, err.getvalue()
    assert json.loads(out.getvalue().splitlines()[-1]) == {
        "status": "SUCCEEDED",
        "backup_id": "b1",
        "job_id": "j1",
        "instance_id": INSTANCE,
        "trigger_id": "d-9",
    }
    post, *gets = handler.seen
    assert [g["webhook-id"] != post["webhook-id"] for g in gets] == [True, True]
    for get in gets:
        Webhook(WEBHOOK_SECRET).verify("", get, json_parse=False)
    assert "00:00 RUNNING backup b1" in err.getvalue()  # the CI-log progress line
    assert WEBHOOK_SECRET not in out.getvalue() + err.getvalue()
