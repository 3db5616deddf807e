"""GitLab: a backup when a deploy actually starts (issue #11 item 5), over HTTP to a real server.

Built from GitLab's documented hook payloads (tests/payloads/gitlab/, copied verbatim from
``webhook_events.md``): the Deployment Hook example (``deployment_id`` 15, project 30,
environment ``staging``) and the Pipeline Hook example, whose ``production`` job is manual and
was never started. Each test says which fields it changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import Emulator
from helpers import event_requests, server_env, successful_creates
from senders import GITLAB_TOKEN, STAGING, source_settings
from tools.serve import function_server

PAYLOADS = Path(__file__).parent.parent / "payloads" / "gitlab"


@pytest.fixture(scope="module")
def web(_emulator_process: Emulator) -> Iterator[str]:
    env = server_env(
        _emulator_process.url,
        **source_settings("https://smn.example"),
        IDEMPOTENCY_WINDOW_DAYS="7",  # the default: these payloads are moved to now
    )
    with function_server(env) as url:
        yield url


@pytest.fixture(autouse=True)
def staging(emu: Emulator) -> None:
    emu.put_instance(STAGING)


def documented(name: str, **changes: Any) -> bytes:
    """The documented payload with ``changes``; a deployment's ``status_changed_at`` is moved
    to now (the example's 2021 date is older than IDEMPOTENCY_WINDOW_DAYS), in GitLab's format."""
    document = json.loads((PAYLOADS / name).read_text())
    if "status_changed_at" in document:
        document["status_changed_at"] = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
    document.update(changes)
    return json.dumps(document).encode()


def headers(kind: str, event_uuid: str) -> dict[str, str]:
    """What GitLab 17.x sends with a hook (research/peers.md 2.2)."""
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": kind,
        "X-Gitlab-Token": GITLAB_TOKEN,
        "X-Gitlab-Event-UUID": event_uuid,
        "Idempotency-Key": event_uuid,
        "X-Gitlab-Webhook-UUID": f"webhook-{event_uuid}",
    }


def post(url: str, body: bytes, sent: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=sent, timeout=20)


def test_a_deployment_that_starts_running_is_backed_up_once(web: str, emu: Emulator) -> None:
    """The documented Deployment Hook with ``status: running`` (it fires when the deploy job
    starts). GitLab retries it, or someone resends it from the hook's log, with new headers:
    the same deployment, its backup back."""
    body = documented("deployment.json", status="running")
    first = post(web, body, headers("Deployment Hook", "uuid-1"))
    assert first.status_code == 202, first.text
    assert first.json()["trigger_id"] == "deployment-15"
    assert first.json()["instance_id"] == STAGING
    again = post(web, body, headers("Deployment Hook", "uuid-2"))
    assert again.status_code == 200, again.text
    assert again.json()["backup"]["id"] == first.json()["backup"]["id"]
    assert successful_creates(emu) == 1


def test_a_retried_deploy_job_is_a_new_deployment_with_its_own_backup(
    web: str, emu: Emulator
) -> None:
    """Retrying a deploy job makes a new deployment (a new ``deployment_id``): it is backed up
    again, right before it runs, since the failed attempt may have changed the database."""
    first = post(
        web, documented("deployment.json", status="running"), headers("Deployment Hook", "u-1")
    )
    retried = documented("deployment.json", status="running", deployment_id=16)
    second = post(web, retried, headers("Deployment Hook", "u-2"))
    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert second.json()["trigger_id"] == "deployment-16"
    assert successful_creates(emu) == 2


def test_the_same_deployment_id_in_another_project_is_another_deployment(
    web: str, emu: Emulator
) -> None:
    body = json.loads(documented("deployment.json", status="running"))
    post(web, json.dumps(body).encode(), headers("Deployment Hook", "p-1"))
    body["project"]["id"] = 31
    other = post(web, json.dumps(body).encode(), headers("Deployment Hook", "p-2"))
    assert other.status_code == 202, other.text
    assert successful_creates(emu) == 2


@pytest.mark.parametrize("status", ["success", "failed", "canceled"])
def test_deployments_that_end_make_no_backup(web: str, emu: Emulator, status: str) -> None:
    """The documented example as is (``success``), and the other end states."""
    response = post(
        web, documented("deployment.json", status=status), headers("Deployment Hook", "e-1")
    )
    assert response.status_code == 200, response.text
    assert response.json()["note"] == "ignored"
    assert event_requests(emu) == []


@pytest.mark.parametrize("status", ["running", "success", "pending"])
def test_pipeline_status_flips_make_no_backup(web: str, emu: Emulator, status: str) -> None:
    """The documented Pipeline Hook: its manual ``production`` job never ran, and a pipeline
    that turns ``running`` again (a retried job) deploys nothing new. Neither backs up, not
    even production; the answer says to enable Deployment events."""
    document = json.loads(documented("pipeline.json"))
    document["object_attributes"]["status"] = status
    body = json.dumps(document).encode()
    for n in range(2):
        response = post(web, body, headers("Pipeline Hook", f"pipeline-{n}"))
        assert response.status_code == 200, response.text
        assert response.json()["note"] == "ignored"
        assert "Deployment events" in response.json()["message"]
    assert event_requests(emu) == []


def test_the_deployments_own_time_ages_it(web: str, emu: Emulator) -> None:
    """``status_changed_at`` is the event's signed time: the documented example, as GitLab's
    docs date it (2021), is older than IDEMPOTENCY_WINDOW_DAYS and is refused, never served."""
    document = json.loads((PAYLOADS / "deployment.json").read_text())
    document["status"] = "running"
    response = post(web, json.dumps(document).encode(), headers("Deployment Hook", "old-1"))
    assert response.status_code == 400, response.text
    assert response.json()["fields"] == [{"field": "sent_at", "rule": "at most 7 days old"}]
    assert "2021-04-28T19:50:00" in response.json()["message"]
    assert event_requests(emu) == []
