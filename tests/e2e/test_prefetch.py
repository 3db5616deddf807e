"""The IAM token and the API connection are fetched as the server starts (issue 15, item 3).

Under both real servers, against the emulator: the image's (``server.py``: waitress, one
process, which calls ``main.prefetch`` after loading the function) and functions-framework's
own (gunicorn: the worker is forked, and calls it as it is born). A cold start's first event
then waits for no IAM call in series, and a failed prefetch costs the first event nothing but
its own fetch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from emulator import Emulator
from emulator.requestlog import RequestRecord
from helpers import event, server_env, sign, successful_creates
from tools.serve import LAUNCHERS, Launcher, function_server

TOKENS = "/v3/auth/tokens"


def _tokens(emu: Emulator) -> list[RequestRecord]:
    return [r for r in emu.requests() if r.path == TOKENS]


def _wait_for(found: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not found():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_the_token_is_fetched_at_start_once_and_the_first_event_reuses_it(
    emu: Emulator, launcher: Launcher
) -> None:
    with function_server(server_env(emu.url), launcher=launcher) as url:
        # No event has been sent: whatever reached the emulator is the prefetch's.
        _wait_for(lambda: any(r.method == "HEAD" for r in emu.requests()))
        before = emu.requests()
        assert [(r.method, r.path, r.status) for r in before] == [
            ("POST", TOKENS, 201),
            ("HEAD", "/", 404),
        ]
        body = event()
        response = httpx.post(url, content=body, headers=sign(body), timeout=15)
        assert response.status_code == 202, response.text
    assert len(_tokens(emu)) == 1
    assert successful_creates(emu) == 1
    after = emu.requests()[len(before) :]
    assert all(r.headers.get("x-auth-token") == "<redacted>" for r in after)


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_failed_prefetch_does_not_fail_the_first_event(emu: Emulator, launcher: Launcher) -> None:
    emu.inject("issue_token", status=503, error_msg="IAM is down for a moment", times=1)
    with function_server(server_env(emu.url), launcher=launcher) as url:
        _wait_for(lambda: [r.status for r in _tokens(emu)] == [503])
        _wait_for(lambda: any(r.method == "HEAD" for r in emu.requests()))
        body = event()
        response = httpx.post(url, content=body, headers=sign(body), timeout=15)
        assert response.status_code == 202, response.text
    # The failed prefetch, then the first event's own fetch: one token in the end.
    assert [r.status for r in _tokens(emu)] == [503, 201]
    assert successful_creates(emu) == 1
