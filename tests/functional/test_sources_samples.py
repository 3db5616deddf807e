"""Every sample in ``events/samples/`` makes its backups and its callbacks, against the emulator.

Each sample is sent as a user would send it, with two changes a test setup needs: the
callback URL points at the local receiver, and signatures are made with the test secrets.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import SetEnv, creates, receiver_per_module, sign
from senders import (
    GITLAB_TOKEN,
    SAMPLE_CALLBACK,
    STAGING,
    SmnEndpoint,
    fresh,
    github_signature,
    make_client,
    retarget,
    sample,
    sample_names,
    smn_endpoint,
    source_settings,
)

Prepare = Callable[[dict[str, Any], dict[str, str], SmnEndpoint], tuple[bytes, dict[str, str]]]


def as_sent(document: Any, headers: dict[str, str], _: SmnEndpoint) -> tuple[bytes, dict[str, str]]:
    return json.dumps(document).encode(), headers


def standard_webhooks(
    document: Any, headers: dict[str, str], _: SmnEndpoint
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    return body, {**headers, **sign(body, msg_id=headers["webhook-id"])}


def github(document: Any, headers: dict[str, str], _: SmnEndpoint) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    return body, {**headers, "X-Hub-Signature-256": github_signature(body)}


def gitlab(document: Any, headers: dict[str, str], _: SmnEndpoint) -> tuple[bytes, dict[str, str]]:
    return json.dumps(document).encode(), {**headers, "X-Gitlab-Token": GITLAB_TOKEN}


def smn(document: Any, headers: dict[str, str], smn: SmnEndpoint) -> tuple[bytes, dict[str, str]]:
    message = {
        **document,
        "signing_cert_url": smn.cert_url,
        "timestamp": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    message["signature"] = smn.key.sign(message)
    return json.dumps(message).encode(), headers


def apig(document: Any, headers: dict[str, str], _: SmnEndpoint) -> tuple[bytes, dict[str, str]]:
    inner = base64.b64decode(document["body"])
    inner_headers = {k.lower(): v for k, v in sign(inner, msg_id="msg_deploy-4711").items()}
    wrapped = {**document, "headers": {**document["headers"], **inner_headers}}
    return json.dumps(wrapped).encode(), headers


@dataclass(frozen=True)
class Case:
    target: str
    path: str
    backups: int
    prepare: Prepare


CASES: dict[str, Case] = {
    "generic-pre-deploy": Case("webhook", "/", 1, standard_webhooks),
    "github-deployment": Case("webhook", "/", 1, github),
    "gitlab-deployment": Case("webhook", "/", 1, gitlab),
    "gitlab-pipeline": Case("webhook", "/", 0, gitlab),  # deployment hooks start backups
    "smn-notification": Case("webhook", "/", 1, smn),
    "cloudevents-binary": Case("event", "/", 1, as_sent),
    "cloudevents-structured": Case("event", "/", 1, as_sent),
    "cloudevents-batch": Case("event", "/", 2, as_sent),
    "cloudevents-kafkasource": Case("event", "/", 1, as_sent),
    "pubsub-push": Case("event", "/", 1, as_sent),
    "functiongraph-smn": Case("event", "/invoke", 2, as_sent),
    "functiongraph-kafka": Case("event", "/invoke", 2, as_sent),
    "functiongraph-timer": Case("event", "/invoke", 1, as_sent),
    "functiongraph-apig": Case("event", "/invoke", 1, apig),
}


def test_every_sample_has_a_case() -> None:
    assert sorted(CASES) == sample_names()


receiver = receiver_per_module()


@pytest.mark.parametrize("name", sample_names())
def test_sample_makes_its_backups_and_callbacks(
    name: str, emu: Emulator, receiver: CallbackReceiver, set_env: SetEnv
) -> None:
    case = CASES[name]
    emu.put_instance(STAGING)
    callback = receiver.url + "/hooks/backup"
    with smn_endpoint() as smn:
        set_env(**source_settings(smn.url, callback))
        raw, headers = sample(name, callback=None)
        document = fresh(retarget(json.loads(raw), SAMPLE_CALLBACK, callback))
        body, headers = case.prepare(document, fresh(headers), smn)

        response = make_client(case.target).post(case.path, data=body, headers=headers)

    assert response.status_code in (200, 202), response.get_data(as_text=True)
    answer = response.get_json()
    job_ids = sorted(_job_ids(answer))
    assert len(job_ids) == case.backups, answer
    assert len(creates(emu)) == case.backups
    callbacks = receiver.wait_for(case.backups)
    assert all(c.verified for c in callbacks)
    assert sorted(c.payload["job_id"] for c in callbacks) == job_ids


def _job_ids(value: Any) -> list[str]:
    """Every ``job_id`` in an answer, also inside an APIG answer's JSON ``body``."""
    if isinstance(value, dict):
        found = [value["job_id"]] if "job_id" in value else []
        if isinstance(value.get("body"), str):
            found += _job_ids(json.loads(value["body"]))
        return found + [j for v in value.values() if not isinstance(v, str) for j in _job_ids(v)]
    if isinstance(value, list):
        return [j for v in value for j in _job_ids(v)]
    return []
