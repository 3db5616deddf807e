"""Property tests (hypothesis) over the event models, every source and every HTTP entry point,
the fuzz tool's oracle, and a short run of the fuzz tool itself.

The properties: no input makes the function answer 5xx or crash; nothing unauthenticated or
refused reaches the API or any other host; no answer echoes a header value or a secret. They
cover what exists when they run: every source in ``events.SOURCES``, every sample in
``events/samples/``, every entry point ``main.py`` defines.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from unittest import mock

import pytest
from flask.testing import FlaskClient
from functions_framework import create_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import events
from config import Settings
from emulator import Emulator
from errors import FieldError, PredeployError, UnauthorizedError
from events.base import field_errors
from events.generic import GenericEventModel
from helpers import INSTANCE, ROOT, SAMPLES, WEBHOOK_SECRET, function_env, sign
from models import Note, Trigger
from tools.fuzz import Case, Fuzzer, check, entry_points

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
SENDER_HEADERS = [
    "Content-Type", "Authorization", "webhook-id", "webhook-timestamp", "webhook-signature",
    "X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256", "X-Gitlab-Event",
    "X-Gitlab-Token", "X-Gitlab-Instance", "Idempotency-Key", "ce-specversion", "ce-type",
    "ce-source", "ce-id", "ce-time", "X-SMN-MESSAGE-TYPE", "X-SMN-MESSAGEID", "X-SMN-TOPIC-URN",
    "X-CFF-Request-Id", "Function-Execution-Id", "X-Request-Id", "User-Agent",
]  # fmt: skip
CONTENT_TYPES = [
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "text/plain",
    "application/json; charset=utf-8",
]
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
headers = st.dictionaries(
    st.sampled_from(SENDER_HEADERS)
    | st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-ABC"), min_size=1, max_size=20),
    header_values,
    max_size=8,
).flatmap(
    lambda found: st.sampled_from(CONTENT_TYPES).map(
        lambda content_type: {"Content-Type": content_type, **found}
    )
)
lower_headers = headers.map(lambda found: {name.lower(): value for name, value in found.items()})
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))

# Values the JSON parser or the models can choke on, as JSON text: numbers past Python's
# int-conversion limit (4,300 digits), NaN/Infinity, floats that overflow, lone surrogates
# (as a value and as a name), nesting past MAX_JSON_DEPTH.
hostile_tokens = st.one_of(
    st.integers(4301, 6000).map(lambda n: "9" * n),
    st.integers(4301, 6000).map(lambda n: "-1" + "0" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" * 5000 + ".5"]),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF).map(json.dumps),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF).map(
        lambda c: "{" + json.dumps(c) + ": 1}"
    ),
    st.integers(33, 200).map(lambda n: "[" * n + "]" * n),
)
_PLACE = "\u0000hostile\u0000"
hostile_places = st.recursive(
    st.just(_PLACE),
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=8), children, min_size=1, max_size=3)
    ),
    max_leaves=4,
)


def spliced(document: Any, place: Any, key: str, token: str) -> bytes:
    """``document`` with ``place`` (holding the hostile token) under ``key``, as raw bytes."""
    holder = dict(document) if isinstance(document, dict) else {"value": document}
    holder[key] = place
    text = json.dumps(holder).replace(json.dumps(_PLACE), token)
    return text.encode("utf-8", "surrogatepass")


def hostile_bodies(seeds: list[Any]) -> st.SearchStrategy[bytes]:
    """A sample (or any JSON) with a hostile value somewhere in it, or the value alone."""
    return st.one_of(
        hostile_tokens.map(str.encode),
        st.builds(
            spliced,
            st.sampled_from(seeds) | json_values,
            hostile_places,
            st.sampled_from(["id", "instance_id", "data", "message", "extra", "records"]),
            hostile_tokens,
        ),
    )


def local_callbacks(text: str) -> str:
    """A sample whose callbacks go to a local port nobody listens on, never to the internet."""
    return text.replace("https://ci.example.com/hooks/backup", "http://127.0.0.1:9/hooks/backup")


@pytest.fixture(scope="module")
def settings_for_sources() -> Iterator[Settings]:
    with mock.patch.dict(os.environ, function_env("http://127.0.0.1:9")):
        yield Settings()


# --------------------------------------------------------------------------------------
# Models and sources, without HTTP


@PROPERTY
@given(json_values)
def test_generic_model_accepts_or_names_fields(document: Any) -> None:
    try:
        GenericEventModel.model_validate(document)
    except ValidationError as exc:
        found = field_errors(exc)
        assert found and all(isinstance(e, FieldError) and e.rule for e in found)


@pytest.mark.parametrize("source", events.SOURCES, ids=lambda source: source.NAME)
def test_every_source_refuses_unauthenticated_input(
    source: Any, settings_for_sources: Settings
) -> None:
    @PROPERTY
    @given(
        lower_headers, st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode())
    )
    def refused(found: dict[str, str], body: bytes) -> None:
        with pytest.raises(PredeployError) as caught:
            source.verify(found, body, settings_for_sources)
        if source.NAME == "generic":
            assert isinstance(caught.value, UnauthorizedError)

    refused()


@pytest.mark.parametrize("source", events.SOURCES, ids=lambda source: source.NAME)
def test_every_source_parses_or_refuses_cleanly(
    source: Any, settings_for_sources: Settings
) -> None:
    seeds = [json.loads(path.read_bytes()) for path in SAMPLE_FILES]

    @PROPERTY
    @given(
        lower_headers,
        st.one_of(
            st.binary(max_size=512),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.sampled_from(seeds).flatmap(mutations).map(lambda v: json.dumps(v).encode()),
            hostile_bodies(seeds),
        ),
    )
    def clean(found: dict[str, str], body: bytes) -> None:
        try:
            delivery = source.parse(found, body, settings_for_sources)
        except PredeployError as exc:
            assert exc.message
        else:
            for record in delivery.records:
                assert isinstance(record, Trigger | Note | PredeployError)
                if isinstance(record, PredeployError):
                    assert record.message

    clean()


def mutations(document: Any) -> st.SearchStrategy[Any]:
    """A sample with fields dropped, replaced by anything, or added."""
    if not isinstance(document, dict) or not document:
        return json_values
    keys = sorted(document)
    return st.lists(
        st.tuples(st.sampled_from([*keys, "extra"]), st.booleans(), json_values), max_size=3
    ).map(lambda changes: _apply(document, changes))


def _apply(document: dict[str, Any], changes: list[tuple[str, bool, Any]]) -> dict[str, Any]:
    changed = dict(document)
    for key, drop, value in changes:
        if drop:
            changed.pop(key, None)
        else:
            changed[key] = value
    return changed


# --------------------------------------------------------------------------------------
# HTTP entry points


@pytest.fixture(scope="module")
def apps(_emulator_process: Emulator) -> Iterator[dict[str, FlaskClient]]:
    local = {**function_env(_emulator_process.url), "CALLBACK_RETRY_SECONDS": "0"}
    with mock.patch.dict(os.environ, local):
        yield {
            target: cast(
                FlaskClient,
                create_app(target=target, source=str(ROOT / "main.py")).test_client(),  # type: ignore[no-untyped-call]
            )
            for target in entry_points()
        }


def test_entry_points_are_found() -> None:
    assert "webhook" in entry_points()


def request_and_check(apps: dict[str, FlaskClient], emu: Emulator, case: Case) -> None:
    for target, client in apps.items():
        before = len(emu.requests())
        response = client.open(case.path, method=case.method, headers=case.headers, data=case.body)
        problems = check(
            case,
            response.status_code,
            response.get_data(as_text=True),
            len(emu.requests()) - before,
            0,
            [WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")],
            platform_verified=target == "event",
        )
        assert problems == [], f"[{target}] {problems}: {case.describe()}"


def markers_of(found: dict[str, str]) -> list[str]:
    return [value for value in found.values() if len(value) >= 24 and value.isalnum()]


@PROPERTY
@given(
    st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "PATCH"]),
    st.sampled_from(["/", "/hook", "/a/b?c=d"]),
    headers,
    st.binary(max_size=2048),
)
def test_random_bytes_and_headers(
    apps: dict[str, FlaskClient],
    _emulator_process: Emulator,
    method: str,
    path: str,
    found: dict[str, str],
    body: bytes,
) -> None:
    case = Case("bytes", method, path, found, body, markers=markers_of(found))
    request_and_check(apps, _emulator_process, case)


@PROPERTY
@given(headers, json_values)
def test_random_json_unsigned(
    apps: dict[str, FlaskClient], _emulator_process: Emulator, found: dict[str, str], value: Any
) -> None:
    case = Case("json", "POST", "/", found, json.dumps(value).encode(), markers=markers_of(found))
    request_and_check(apps, _emulator_process, case)


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda path: path.name)
def test_mutated_samples_unsigned(
    apps: dict[str, FlaskClient], _emulator_process: Emulator, sample: Path
) -> None:
    @PROPERTY
    @given(headers, mutations(json.loads(local_callbacks(sample.read_text()))))
    def unsigned(found: dict[str, str], document: Any) -> None:
        body = json.dumps(document).encode()
        request_and_check(apps, _emulator_process, Case("sample", "POST", "/", found, body))

    unsigned()


@PROPERTY
@given(json_values)
def test_signed_random_json_never_fails_and_refusals_stay_local(
    apps: dict[str, FlaskClient], _emulator_process: Emulator, value: Any
) -> None:
    body = json.dumps(value).encode()
    case = Case("signed", "POST", "/", sign(body), body, authentic=True)
    request_and_check(apps, _emulator_process, case)


@PROPERTY
@given(hostile_bodies([json.loads(path.read_bytes()) for path in SAMPLE_FILES]), st.integers(0, 2))
def test_signed_hostile_json_is_refused_never_a_5xx(
    apps: dict[str, FlaskClient], _emulator_process: Emulator, body: bytes, wrap: int
) -> None:
    """Signed (so it reaches the parser on ``webhook``), alone, as Pub/Sub data, or as one
    event of a CloudEvents batch next to a good one (``event``)."""
    headers = {"Content-Type": "application/json"}
    if wrap == 1:
        data = base64.b64encode(body).decode()
        envelope = {"message": {"data": data, "messageId": "m-1"}, "subscription": "s"}
        body = json.dumps(envelope).encode()
    elif wrap == 2:
        ce = b'{"specversion":"1.0","id":"e-%d","source":"t","type":"com.example.pre-deploy",'
        good = b'{"event":"pre-deploy","id":"hostile-good","instance_id":"%s"}' % INSTANCE.encode()
        body = b"[" + ce % 1 + b'"data":' + body + b"}," + ce % 2 + b'"data":' + good + b"}]"
        headers["Content-Type"] = "application/cloudevents-batch+json"
    case = Case("hostile", "POST", "/", {**headers, **sign(body)}, body, authentic=True)
    request_and_check(apps, _emulator_process, case)


# --------------------------------------------------------------------------------------
# The oracle and the tool


def case(authentic: bool = False, markers: list[str] | None = None) -> Case:
    return Case("unit", "POST", "/", {}, b"{}", authentic, markers or [])


ERROR = json.dumps({"error": "invalid_event", "message": "x"})


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ((case(), 500, ERROR, 0, 0), "answered 500"),
        ((case(), 400, "<html>Bad</html>", 0, 0), "is not a JSON object"),
        ((case(markers=["hv1234567890"]), 401, '{"error": "hv1234567890"}', 0, 0), "echoes"),
        ((case(), 401, json.dumps({"error": "unauthorized"}), 1, 0), "upstream call"),
        ((case(authentic=True), 400, ERROR, 2, 0), "upstream call"),
        ((case(), 202, "{}", 0, 1), "outbound call"),
        ((case(), 202, '{"id": "s3cret-value"}', 0, 0), "configured secret"),
        ((case(), 400, json.dumps({"results": [{"status": "failed"}]}), 0, 0), "naming its"),
    ],
)
def test_oracle_finds_each_problem(
    arguments: tuple[Case, int, str, int, int], problem: str
) -> None:
    found = check(*arguments, ["s3cret-value"])
    assert any(problem in text for text in found), found


def test_oracle_passes_good_answers() -> None:
    upstream_error = json.dumps({"error": "upstream_error", "error_code": "DBS.200002"})
    assert check(case(authentic=True), 202, "{}", 1, 1, ["s3cret-value"]) == []
    assert check(case(authentic=True), 404, upstream_error, 1, 0, ["s3cret-value"]) == []
    assert check(case(), 401, json.dumps({"error": "unauthorized"}), 0, 0, ["s"]) == []
    batch = {"results": [{"status": "started"}, {"status": "failed", "error": "invalid_event"}]}
    assert check(case(authentic=True), 400, json.dumps(batch), 1, 0, ["s3cret-value"]) == []


def test_fuzz_tool_short_run_is_clean() -> None:
    with mock.patch.dict(os.environ):
        fuzzer = Fuzzer(seed=20261127)
        try:
            fuzzer.run(seconds=60, max_cases=600)
        finally:
            fuzzer.close()
    report = fuzzer.report()
    assert report["requests"] == 600
    assert report["findings"] == []
    assert report["entry_points"] == entry_points()
    # The run reached every layer: refusals, the event rules and real backups.
    statuses = set(report["by_status"])
    assert {"400", "401", "415"} <= statuses
    assert {"200", "202"} & statuses  # backups made (202) or found again (200)
