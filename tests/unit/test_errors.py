"""Each failure knows its answer (errors.py), and docs/responses.md says the same."""

from __future__ import annotations

import pathlib
import re

import pytest

import errors
from errors import (
    BAD_RESPONSE,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    FieldError,
    ForbiddenError,
    InstanceBusyError,
    InstanceNotActiveError,
    InvalidEventError,
    NotFoundError,
    PayloadTooLargeError,
    PredeployError,
    UnauthorizedError,
    UnsupportedMediaError,
    UpstreamUnavailableError,
)

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "responses.md"

# (error, status, error name, retry within the deadline helps, a redelivery helps, Retry-After)
ANSWERS: list[tuple[PredeployError, int, str, bool, bool, str | None]] = [
    (InvalidEventError("bad"), 400, "invalid_event", False, False, None),
    (UnsupportedMediaError("not JSON"), 415, "unsupported_media_type", False, False, None),
    (PayloadTooLargeError("big"), 413, "payload_too_large", False, False, None),
    (UnauthorizedError("no"), 401, "unauthorized", False, False, None),
    (ForbiddenError("no"), 403, "forbidden", False, False, None),
    (NotFoundError("none"), 404, "not_found", False, False, None),
    (InstanceBusyError("busy", "i", "BACKING UP"), 503, "instance_busy", True, True, "30"),
    (
        InstanceNotActiveError("frozen", "i", "FROZEN"),
        409,
        "instance_not_active",
        False,
        False,
        None,
    ),
    # a missing setting is not retried now, but an operator fixes it: a redelivery goes through
    (ConfigurationError("unset"), 500, "configuration_error", False, True, None),
    (AuthenticationError("refused", 401), 502, "iam_authentication_failed", False, True, None),
    (UpstreamUnavailableError("away"), 503, "upstream_unavailable", True, True, "5"),
    (
        UpstreamUnavailableError("slow", timed_out=True),
        504,
        "upstream_unavailable",
        True,
        True,
        "5",
    ),
    (ApiError(409, "DBS.201205", "backup running"), 503, "upstream_error", True, True, "30"),
    (ApiError(400, "DBS.201014", "wrong status"), 503, "upstream_error", True, True, "30"),
    (ApiError(429, "APIGW.0308", "slow down"), 503, "upstream_error", True, True, "10"),
    (ApiError(429, "APIGW.0308", "x", retry_after=2.4), 503, "upstream_error", True, True, "2"),
    (ApiError(409, "DBS.201205", "x", retry_after=0.2), 503, "upstream_error", True, True, "1"),
    (ApiError(500, "DBS.000001", "oops"), 503, "upstream_error", True, True, "10"),
    (ApiError(400, "DBS.200543", "job not yet"), 503, "upstream_error", True, True, "10"),
    (ApiError(502, BAD_RESPONSE, "unreadable"), 502, "upstream_error", False, False, None),
    (ApiError(401, "APIGW.0301", "token"), 502, "upstream_error", False, True, None),
    (ApiError(403, "DBS.280056", "no permission"), 502, "upstream_error", False, True, None),
    (ApiError(400, "DBS.280001", "bad name"), 400, "upstream_error", False, False, None),
    (ApiError(404, "DBS.200002", "no instance"), 404, "upstream_error", False, False, None),
    (ApiError(409, "DBS.200316", "storage full"), 409, "upstream_error", False, False, None),
    (ApiError(422, "DBS.1", "unprocessable"), 422, "upstream_error", False, False, None),
    (ApiError(410, "DBS.1", "gone"), 502, "upstream_error", False, False, None),
]


@pytest.mark.parametrize(
    ("error", "status", "name", "retry_helps", "redelivery_helps", "retry_after"),
    ANSWERS,
    ids=[f"{type(a[0]).__name__}-{a[1]}-{i}" for i, a in enumerate(ANSWERS)],
)
def test_each_error_knows_its_answer(
    error: PredeployError,
    status: int,
    name: str,
    retry_helps: bool,
    redelivery_helps: bool,
    retry_after: str | None,
) -> None:
    answered, body, headers = error.answer()
    assert (answered, error.http_status) == (status, status)
    assert body["error"] == error.error_name == name
    assert body["message"] == error.message
    assert (error.retry_helps, error.redelivery_helps) == (retry_helps, redelivery_helps)
    assert headers.get("Retry-After") == retry_after
    assert not retry_helps or redelivery_helps  # what a retry now cures, a later one does too


def test_the_answers_details_name_fields_instance_status_and_the_apis_reason() -> None:
    invalid = InvalidEventError("bad", [FieldError("name", "must start with a letter")])
    assert invalid.answer()[1]["fields"] == [{"field": "name", "rule": "must start with a letter"}]
    assert "fields" not in InvalidEventError("bad").answer()[1]
    busy = InstanceBusyError("busy", "inst", "REBOOTING").answer()[1]
    assert busy["instance_status"] == "REBOOTING"
    api = ApiError(404, "DBS.200002", "no such instance", request_id="req-1").answer()[1]
    assert api == {
        "error": "upstream_error",
        "message": "TaurusDB API error 404 DBS.200002: no such instance",
        "error_code": "DBS.200002",
        "error_msg": "no such instance",
        "request_id": "req-1",
    }
    assert "request_id" not in ApiError(404, "DBS.200002", "x").answer()[1]


def test_an_unnamed_failure_is_a_500_error() -> None:
    assert PredeployError("odd").answer() == (500, {"error": "error", "message": "odd"}, {})


def test_busy_is_only_the_instance_being_busy() -> None:
    assert InstanceBusyError("b", "i", "BACKING UP").busy
    assert ApiError(409, "DBS.201205", "x").busy
    assert ApiError(400, "DBS.201014", "x").busy  # whatever its status
    assert not ApiError(429, "APIGW.0308", "x").busy
    assert not ApiError(409, "DBS.200316", "x").busy
    assert not UpstreamUnavailableError("away").busy


# -- docs/responses.md's status table, checked against the classes ---------------------------


def _error_classes() -> dict[str, type[PredeployError]]:
    found: dict[str, type[PredeployError]] = {}
    todo = [PredeployError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__ == errors.__name__ and cls.error_name != "error":
            found[cls.error_name] = cls
    return found


def _possible_statuses(cls: type[PredeployError]) -> set[int]:
    if cls is ApiError:  # worked out from the API's answer: every kind of answer it can get
        return {
            ApiError(status, code, "x", retry_after=after).http_status
            for status in (400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503)
            for code in ("DBS.1", "DBS.201205", "DBS.200543", "APIGW.0308", BAD_RESPONSE)
            for after in (None, 3.0)
        }
    if cls is UpstreamUnavailableError:
        return {UpstreamUnavailableError("x", timed_out=t).http_status for t in (False, True)}
    return {cls.http_status}


def _table() -> list[tuple[list[int], list[str], bool]]:
    """The rows of the Responses table: statuses, error names in the body, Retry-After named."""
    text = DOCS.read_text()
    section = text.split("## Responses", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.split(" | ")
        statuses = [int(s) for s in re.findall(r"`(\d{3})`", cells[0])]
        names: list[str] = []
        for group in re.findall(r'"error": ((?:"[a-z_]+"(?: / | or )?)+)', line):
            names += re.findall(r'"([a-z_]+)"', group)
        rows.append((statuses, names, "Retry-After" in line))
    return rows


#: Names in the table that are no error but how a finished wait ended (main.py's answers).
WAIT_OUTCOMES = {"backup_failed", "backup_timed_out"}


def test_the_docs_status_table_matches_the_errors() -> None:
    classes = _error_classes()
    rows = _table()
    assert len(rows) > 10  # the table was found
    documented: dict[str, set[int]] = {}
    for statuses, names, retry_after in rows:
        names = [name for name in names if name not in WAIT_OUTCOMES]
        if not names:
            continue
        assert set(names) <= set(classes), f"the docs name an unknown error: {names}"
        if len(names) == len(statuses) > 1:  # "`413` / `415` … "payload_too_large" / "…"
            pairs = list(zip(names, [[s] for s in statuses], strict=True))
        else:
            pairs = [(name, statuses) for name in names]
        for name, row_statuses in pairs:
            possible = _possible_statuses(classes[name])
            assert set(row_statuses) & possible, f"{name}: docs say {row_statuses}, not {possible}"
            documented.setdefault(name, set()).update(set(row_statuses) & possible)
        possible_any = set().union(*(_possible_statuses(classes[n]) for n in names))
        assert set(statuses) <= possible_any, f"{names}: docs say {statuses}"
        waits = [n for n in names if classes[n].wait_seconds or classes[n] is ApiError]
        if any(classes[n].wait_seconds for n in names):
            assert retry_after, f"{names}: the docs do not mention Retry-After"
        if retry_after:
            assert waits, f"{names}: the docs mention a Retry-After the error does not send"
    for name, cls in classes.items():
        if cls in (ApiError, errors.PreconditionError):
            continue
        assert _possible_statuses(cls) <= documented.get(name, set()), f"{name} is not documented"
