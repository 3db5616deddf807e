"""The idempotency window at the entry points, on a real server (``tools.serve``) and emulator.

A delivery whose signed send time is older than ``IDEMPOTENCY_WINDOW_DAYS`` is refused and
never served: ``webhook`` answers 4xx, ``event`` acknowledges it as a failed record (2xx, so
the queue does not redeliver) and calls back ``backup.failed``; nothing reaches the API. Send
times come from the senders' signed material: GitHub's ``deployment.created_at`` (octokit's
deployment example, events/samples/github-deployment.json) and a CloudEvent's ``time``
attribute (``ce-time``, CloudEvents 1.0 binary mode, events/samples/cloudevents-binary).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import event_requests, server_env
from senders import github_signature, sample, source_settings
from tools.serve import function_server


def sources_server_env(api_url: str) -> dict[str, str]:
    # IDEMPOTENCY_WINDOW_DAYS: the default, whatever the test environment says
    return server_env(api_url, **source_settings(), IDEMPOTENCY_WINDOW_DAYS="7")


@pytest.fixture(scope="module")
def web(_emulator_process: Emulator) -> Iterator[str]:
    with function_server(sources_server_env(_emulator_process.url)) as url:
        yield url


@pytest.fixture(scope="module")
def queue(_emulator_process: Emulator) -> Iterator[str]:
    with function_server(sources_server_env(_emulator_process.url), target="event") as url:
        yield url


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=20)


def api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def github_delivery(created: datetime) -> tuple[bytes, dict[str, str]]:
    """The sample deployment, made at ``created``, signed as GitHub signs it."""
    body, headers = sample("github-deployment")
    document = json.loads(body)
    document["deployment"]["created_at"] = api_time(created)
    body = json.dumps(document).encode()
    return body, {**headers, "X-Hub-Signature-256": github_signature(body)}


def cloudevent(time: datetime, callback: str) -> tuple[bytes, dict[str, str]]:
    body, headers = sample("cloudevents-binary", callback=callback)
    return body, {**headers, "ce-time": api_time(time)}


def test_an_old_github_delivery_is_refused_with_nothing_made(web: str, emu: Emulator) -> None:
    body, headers = github_delivery(datetime.now(UTC) - timedelta(days=7, hours=1))
    response = post(web, body, headers)

    assert response.status_code == 400, response.text
    document = response.json()
    assert document["error"] == "invalid_event"
    assert "more than IDEMPOTENCY_WINDOW_DAYS (7) days ago" in document["message"]
    assert document["fields"] == [{"field": "sent_at", "rule": "at most 7 days old"}]
    assert event_requests(emu) == []


def test_a_github_redelivery_inside_the_window_reads_one_page_each(web: str, emu: Emulator) -> None:
    emu.add_backups(  # a long history of older manual backups
        "07033b125fd94a8a96896f8bcfee6ddain07",
        1000,
        name="nightly",
        begin_time=datetime.now(UTC) - timedelta(days=8),
    )
    body, headers = github_delivery(datetime.now(UTC) - timedelta(days=6))
    first = post(web, body, headers)
    again = post(web, body, headers)  # GitHub's "Redeliver" button: the same signed body

    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["backup"]["id"] == first.json()["backup"]["id"]
    # Answered lists: the server outlives the per-test reset, which revokes the token it
    # fetched at start, so its first call may be refused once (401) and sent again.
    lists = [
        r
        for r in emu.requests()
        if r.path.endswith("/backups") and "begin_time" in r.query and r.status == 200
    ]
    assert len(lists) == 2  # one page per delivery, 1,000 older backups notwithstanding


def test_an_old_cloudevent_on_event_is_acknowledged_as_failed(
    queue: str, emu: Emulator, receiver: CallbackReceiver
) -> None:
    body, headers = cloudevent(datetime.now(UTC) - timedelta(days=8), receiver.url)
    response = post(queue, body, headers)

    assert response.status_code == 200, response.text  # acknowledged: no redelivery
    (result,) = response.json()["results"]
    assert result["outcome"] == "failed"
    assert result["error"] == "invalid_event"
    assert "IDEMPOTENCY_WINDOW_DAYS" in result["message"]
    (callback,) = receiver.wait_for(1)
    assert callback.verified and callback.payload["type"] == "backup.failed"
    assert event_requests(emu) == []


@pytest.mark.parametrize(
    ("ahead", "served"), [(timedelta(minutes=10), True), (timedelta(hours=2), False)]
)
def test_a_send_time_ahead_of_the_clock(
    queue: str, emu: Emulator, ahead: timedelta, served: bool
) -> None:
    body, headers = cloudevent(datetime.now(UTC) + ahead, "http://127.0.0.1:9/hooks/backup")
    response = post(queue, body, headers)

    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    if served:
        assert result["outcome"] == "started"
    else:
        assert result["outcome"] == "failed"
        assert "CLOCK_SKEW_SECONDS" in result["message"]
        assert event_requests(emu) == []
