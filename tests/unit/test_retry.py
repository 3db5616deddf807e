"""The one taxonomy of failures, and the deadline that bounds every retry."""

from __future__ import annotations

import time

import pytest

from clients.retry import Deadline, is_busy, is_retryable, request_timeout, retrying, within
from errors import ApiError, AuthenticationError, InvalidEventError, UpstreamUnavailableError


def api(status: int, code: str, retry_after: float | None = None) -> ApiError:
    return ApiError(status, code, "message", retry_after=retry_after)


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailableError("connection refused"),
        UpstreamUnavailableError("timed out", timed_out=True),
        api(429, "APIGW.0308"),
        api(429, "HTTP.429"),
        api(400, "APIG.0308"),
        api(500, "DBS.108000"),
        api(502, "HTTP.502"),
        api(503, "APIGW.0103"),
        api(409, "DBS.201205"),
        api(409, "DBS.200019"),
        api(409, "DBS.200047"),
        api(409, "DBS.201015"),
        api(409, "DBS.212033"),
        api(409, "DBS.200011"),
        api(400, "DBS.201014"),
        api(409, "DBS.201014"),
        api(400, "DBS.200543"),
    ],
    ids=str,
)
def test_retryable(error: Exception) -> None:
    assert is_retryable(error)


@pytest.mark.parametrize(
    "error",
    [
        api(400, "DBS.280277"),
        api(400, "DBS.280127"),
        api(404, "DBS.200002"),
        api(403, "DBS.200604"),
        api(401, "APIGW.0301"),
        api(409, "DBS.200316"),  # storage full: waiting will not help
        api(409, "DBS.280406"),
        api(502, "PREDEPLOY.BAD_RESPONSE"),  # a 201 we could not read: never create again
        AuthenticationError("wrong password", 401),
        InvalidEventError("bad"),
        ValueError("a bug"),
    ],
    ids=str,
)
def test_permanent(error: Exception) -> None:
    assert not is_retryable(error)


def test_busy_is_the_instance_busy_subset() -> None:
    assert is_busy(api(409, "DBS.201205"))
    assert is_busy(api(400, "DBS.201014"))
    assert not is_busy(api(429, "APIGW.0308"))
    assert not is_busy(api(409, "DBS.200316"))


def test_retrying_stops_before_the_deadline() -> None:
    deadline = Deadline(0.6)
    attempts = 0
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailableError):
        for attempt in retrying(deadline, wait_initial=0.1, wait_max=0.2):
            with attempt:
                attempts += 1
                raise UpstreamUnavailableError("down")
    assert attempts >= 2
    assert time.monotonic() - started < 0.6 + 0.3  # no attempt started that could not finish


def test_retrying_honours_retry_after_and_gives_up_when_it_is_too_far() -> None:
    attempts = 0
    with pytest.raises(ApiError):
        for attempt in retrying(Deadline(5), wait_initial=0.01):
            with attempt:
                attempts += 1
                raise api(429, "APIGW.0308", retry_after=30)
    assert attempts == 1  # waiting 30 s would pass the 5 s deadline


def test_permanent_error_is_raised_at_once() -> None:
    attempts = 0
    with pytest.raises(ApiError):
        for attempt in retrying(Deadline(5)):
            with attempt:
                attempts += 1
                raise api(400, "DBS.280277")
    assert attempts == 1


def test_request_timeout_shrinks_to_the_deadline() -> None:
    assert request_timeout(8.0) == 8.0
    with within(Deadline(2.0)):
        assert 1.5 < request_timeout(8.0) <= 2.0
    with within(Deadline(0.0)), pytest.raises(UpstreamUnavailableError) as caught:
        request_timeout(8.0)
    assert caught.value.timed_out
