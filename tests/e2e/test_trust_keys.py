"""The key, instance and callback come from what the sender's authentication covers.

Issue #10 item 1 (replays under new unsigned headers, keys that cannot collide, the event's own
id on ``event``, backups made before the upgrade still found), item 9 (ASCII instance ids, no
secret in a derived name), and ``Trigger.sent_at`` from signed material. Replays and upgrades
run against a real functions-framework server and the emulator, over HTTP.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from config import load_settings
from emulator import Emulator
from events import cloudevents, functiongraph, generic, github, gitlab
from handlers.naming import backup_name_for, description_for
from helpers import (
    INSTANCE,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    SetEnv,
    backups_on,
    event_requests,
    server_env,
    sign,
    successful_creates,
)
from models import Trigger
from senders import (
    GITHUB_SECRET,
    GITLAB_SIGNING_TOKEN,
    GITLAB_TOKEN,
    STAGING,
    github_signature,
    make_client,
    sample,
    source_settings,
)
from tools.serve import function_server

ROTATED = {"Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-GitHub-Delivery"}


def sources_server_env(api_url: str, **extra: str) -> dict[str, str]:
    return server_env(api_url, **{**source_settings(), "WEBHOOK_TOKEN": WEBHOOK_TOKEN, **extra})


@pytest.fixture(scope="module")
def web(_emulator_process: Emulator) -> Iterator[str]:
    with function_server(sources_server_env(_emulator_process.url)) as url:
        yield url


@pytest.fixture(scope="module")
def queue(_emulator_process: Emulator) -> Iterator[str]:
    with function_server(sources_server_env(_emulator_process.url), target="event") as url:
        yield url


@pytest.fixture(scope="module")
def signed_gitlab(_emulator_process: Emulator) -> Iterator[str]:
    env = sources_server_env(
        _emulator_process.url, GITLAB_WEBHOOK_SIGNING_TOKEN=GITLAB_SIGNING_TOKEN
    )
    with function_server(env) as url:
        yield url


@pytest.fixture(autouse=True)
def staging(emu: Emulator) -> None:
    emu.put_instance(STAGING)


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=20)


def answer_backup(response: httpx.Response) -> str:
    document = response.json()
    backup: dict[str, Any] = document["backup"]
    return str(backup["id"])


# --- webhook: a replay under new unsigned headers is the same trigger --------------------------


def test_github_replay_under_new_delivery_ids_gets_the_first_backup(
    web: str, emu: Emulator
) -> None:
    """Issue #10: one captured deployment replayed with new X-GitHub-Delivery made four backups.

    octokit's deployment example shape (events/samples/github-deployment.json)."""
    body, headers = sample("github-deployment")
    headers = {**headers, "X-Hub-Signature-256": github_signature(body)}
    first = post(web, body, headers)
    assert first.status_code == 202, first.text
    for n in range(3):
        replay = {**headers, "X-GitHub-Delivery": f"00000000-0000-4000-8000-00000000000{n}"}
        again = post(web, body, replay)
        assert again.status_code == 200, again.text
        assert again.json()["created"] is False
        assert answer_backup(again) == answer_backup(first)
    assert successful_creates(emu) == 1
    assert len(backups_on(emu)) == 1


def test_unsigned_delivery_id_goes_to_the_log_only(
    emu: Emulator, set_env: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    set_env(**source_settings())
    body, headers = sample("github-deployment")
    headers = {**headers, "X-Hub-Signature-256": github_signature(body)}
    client = make_client("webhook")
    capsys.readouterr()
    response = client.post("/", data=body, headers={**headers, "X-GitHub-Delivery": "guid-77"})
    assert response.status_code == 202, response.get_json()
    assert "guid-77" not in response.get_data(as_text=True)
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    outcome = [line for line in logged if line.get("message") == "event handled"]
    assert [line["correlation_id"] for line in outcome] == ["guid-77"]


def test_gitlab_token_replay_under_new_idempotency_keys_gets_the_first_backup(
    web: str, emu: Emulator
) -> None:
    """GitLab's documented Deployment Hook (events/samples/gitlab-deployment.json)."""
    body, headers = sample("gitlab-deployment")
    headers = {**headers, "X-Gitlab-Token": GITLAB_TOKEN}
    first = post(web, body, headers)
    assert first.status_code == 202, first.text
    for n in range(3):
        replay = headers | {name: f"forged-{n}-{name}" for name in ROTATED if name in headers}
        again = post(web, body, replay)
        assert again.status_code == 200, again.text
        assert answer_backup(again) == answer_backup(first)
    assert successful_creates(emu) == 1


def test_gitlab_signed_replay_with_a_new_idempotency_key_gets_the_first_backup(
    signed_gitlab: str, emu: Emulator
) -> None:
    """Signing mode signs webhook-id, not Idempotency-Key: changing the latter alone made three
    backups. GitLab's signing token follows Standard Webhooks (research/peers.md, MR 230944)."""
    body, headers = sample("gitlab-deployment")
    key = headers["Idempotency-Key"]
    signed = {
        **{k: v for k, v in headers.items() if k != "X-Gitlab-Token"},
        **sign(body, secret=GITLAB_SIGNING_TOKEN, msg_id=key),
    }
    first = post(signed_gitlab, body, signed)
    assert first.status_code == 202, first.text
    for n in range(3):
        again = post(signed_gitlab, body, {**signed, "Idempotency-Key": f"evil-{n}"})
        assert again.status_code == 200, again.text
        assert answer_backup(again) == answer_backup(first)
    resigned = post(signed_gitlab, body, {**signed, **sign(body, GITLAB_SIGNING_TOKEN, "msg_new")})
    assert resigned.status_code == 200, resigned.text
    assert successful_creates(emu) == 1


def test_binary_cloudevent_on_webhook_is_refused_with_a_hint(web: str, emu: Emulator) -> None:
    """ce-* headers are outside the Standard Webhooks signature: `ce-id: evil-0/1/2` made three
    backups. CloudEvents HTTP binding, binary mode (events/samples/cloudevents-binary)."""
    body, headers = sample("cloudevents-binary")
    ce = {k: v for k, v in headers.items() if k.lower().startswith("ce-")}
    for n in range(3):
        response = post(web, body, {**sign(body), **ce, "ce-id": f"evil-{n}"})
        assert response.status_code == 415, response.text
        message = response.json()["message"]
        assert "structured mode" in message
        assert "application/cloudevents+json" in message
    assert event_requests(emu) == []


def test_unsigned_webhook_id_is_not_the_key_with_a_bearer_token(
    emu: Emulator, set_env: SetEnv
) -> None:
    """With only WEBHOOK_TOKEN configured, a webhook-id header is signed by nothing: without an
    id in the body, the body's hash is the key."""
    set_env(**source_settings(), WEBHOOK_SECRET=None, WEBHOOK_TOKEN=WEBHOOK_TOKEN)
    client = make_client("webhook")
    body = json.dumps({"event": "pre-deploy", "instance_id": INSTANCE}).encode()
    answers = [
        client.post(
            "/",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {WEBHOOK_TOKEN}",
                "webhook-id": f"msg_{n}",
            },
        )
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [202, 200, 200], [a.get_json() for a in answers]
    assert answers[0].get_json()["trigger_id"].startswith("sha256:")
    assert successful_creates(emu) == 1


def test_signed_webhook_id_is_the_key_without_an_id(web: str, emu: Emulator) -> None:
    """Standard Webhooks signs webhook-id: a redelivery (same id, new signature) finds the
    backup; a new message id is a new trigger."""
    body = json.dumps({"event": "pre-deploy", "instance_id": INSTANCE}).encode()
    first = post(web, body, sign(body, msg_id="msg_a"))
    again = post(web, body, sign(body, msg_id="msg_a"))
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert first.json()["trigger_id"] == "msg_a"
    assert successful_creates(emu) == 1


@pytest.mark.parametrize(
    "release",
    ["rel-2", "release-2026-11-29-shop-orders-migration"],
    ids=["short", "cut-in-the-name"],
)
def test_keys_of_different_triggers_cannot_collide(web: str, emu: Emulator, release: str) -> None:
    """Issue #10: `rel-2` for [A, B] and `rel-2@A` for A shared a key; the second got the
    first one's backup (visible once the readable part of the name is cut at 32 characters)."""
    both = json.dumps(
        {"event": "pre-deploy", "id": release, "instance_ids": [INSTANCE, STAGING]}
    ).encode()
    first = post(web, both, sign(both))
    assert first.status_code == 202, first.text
    lookalike = json.dumps(
        {"event": "pre-deploy", "id": f"{release}@{INSTANCE}", "instance_id": INSTANCE}
    ).encode()
    second = post(web, lookalike, sign(lookalike, msg_id="msg_other"))
    assert second.status_code == 202, second.text
    assert second.json()["created"] is True
    made = {r["record"]: r["backup"]["id"] for r in first.json()["results"]}
    assert answer_backup(second) not in made.values()
    assert len(backups_on(emu, INSTANCE)) == 2


# --- event: the event's own id wins over transport ids ----------------------------------------


def test_kafka_producer_retry_at_a_new_offset_gets_the_first_backup(
    queue: str, emu: Emulator
) -> None:
    """Knative KafkaSource: ce-id is partition/offset (events/samples/cloudevents-kafkasource).
    A producer that sends the event again lands at a new offset, with the same event id."""
    body, headers = sample("cloudevents-kafkasource")
    first = post(queue, body, headers)
    again = post(queue, body, {**headers, "ce-id": "partition:0/offset:1843"})
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["results"][0]["outcome"] == "started"
    assert again.json()["results"][0]["outcome"] == "exists"
    assert successful_creates(emu) == 1


def test_pubsub_republish_under_a_new_message_id_gets_the_first_backup(
    queue: str, emu: Emulator
) -> None:
    """Pub/Sub push envelope (events/samples/pubsub-push.json), published twice."""
    body, headers = sample("pubsub-push")
    document = json.loads(body)
    document["message"]["messageId"] = document["message"]["message_id"] = "99999999999"
    first = post(queue, body, headers)
    again = post(queue, json.dumps(document).encode(), headers)
    assert [first.json()["results"][0]["outcome"], again.json()["results"][0]["outcome"]] == [
        "started",
        "exists",
    ], again.text
    assert successful_creates(emu) == 1


# --- the upgrade: backups made under the previous derivation are still found ------------------


def previous_name(key: str, trigger_id: str) -> tuple[str, str]:
    """The previous release's name and marker for a key, as it derived them."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"predeploy-{trigger_id}-{digest[:12]}", f"[pd:{digest[:16]}]"


def seed_previous(emu: Emulator, instance: str, key: str, trigger_id: str, source: str) -> str:
    name, marker = previous_name(key, trigger_id)
    return emu.add_backup(
        instance,
        backup_type="manual",
        name=name,
        description=f"Pre-deploy backup, {source} trigger {trigger_id} {marker}",
    )


def test_generic_backup_from_before_the_upgrade_is_found(web: str, emu: Emulator) -> None:
    seeded = seed_previous(emu, INSTANCE, "generic:deploy-4711", "deploy-4711", "generic")
    body = json.dumps({"event": "pre-deploy", "id": "deploy-4711", "instance_id": INSTANCE})
    response = post(web, body.encode(), sign(body.encode()))
    assert response.status_code == 200, response.text
    assert answer_backup(response) == seeded
    assert successful_creates(emu) == 0


def test_multi_instance_backups_from_before_the_upgrade_are_found(web: str, emu: Emulator) -> None:
    seeded = {
        instance: seed_previous(emu, instance, f"generic:rel-7@{instance}", "rel-7", "generic")
        for instance in (INSTANCE, STAGING)
    }
    body = json.dumps({"event": "pre-deploy", "id": "rel-7", "instance_ids": [INSTANCE, STAGING]})
    response = post(web, body.encode(), sign(body.encode()))
    assert response.status_code == 200, response.text
    found = {r["instance_id"]: r["backup"]["id"] for r in response.json()["results"]}
    assert found == seeded
    assert successful_creates(emu) == 0


def test_github_redelivery_of_a_delivery_served_before_the_upgrade(web: str, emu: Emulator) -> None:
    """GitHub's "Redeliver" keeps X-GitHub-Delivery: the old backup is found by it."""
    body, headers = sample("github-deployment")
    delivery = headers["X-GitHub-Delivery"]
    seeded = seed_previous(emu, INSTANCE, f"github:{delivery}", "deployment-1452339931", "github")
    response = post(web, body, {**headers, "X-Hub-Signature-256": github_signature(body)})
    assert response.status_code == 200, response.text
    assert answer_backup(response) == seeded
    assert successful_creates(emu) == 0


def test_previous_derivation_of_another_trigger_is_not_taken(web: str, emu: Emulator) -> None:
    """The previous name holds the (signed) trigger id: a forged delivery id that names another
    deployment's old backup finds nothing; the deployment gets its own backup."""
    body, headers = sample("github-deployment")
    seed_previous(emu, INSTANCE, "github:other-delivery", "deployment-99", "github")
    forged = {**headers, "X-Hub-Signature-256": github_signature(body)}
    response = post(web, body, {**forged, "X-GitHub-Delivery": "other-delivery"})
    assert response.status_code == 202, response.text
    assert successful_creates(emu) == 1


# --- issue #10 item 9: ASCII instance ids, no secret in a derived name ------------------------


@pytest.mark.parametrize("digits", ["\u0660\u0667", "\U0001d7ce\U0001d7d5"], ids=["arabic", "math"])
def test_instance_ids_with_other_digits_are_refused(web: str, emu: Emulator, digits: str) -> None:
    body = json.dumps(
        {"event": "pre-deploy", "id": "d-1", "instance_id": INSTANCE[:-2] + digits}
    ).encode()
    response = post(web, body, sign(body))
    assert response.status_code == 400, response.text
    (field,) = response.json()["fields"]
    assert field["field"] == "instance_id"
    assert "2 digits" in field["rule"]
    assert event_requests(emu) == []


def fragments(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.mark.parametrize(
    "trigger_id",
    [WEBHOOK_TOKEN, f"release-{WEBHOOK_TOKEN}-1", WEBHOOK_TOKEN[:20], "demo-password"],
    ids=["equal", "inside", "prefix", "os-password"],
)
def test_derived_names_never_show_a_configured_secret(
    web: str, emu: Emulator, trigger_id: str
) -> None:
    body = json.dumps({"event": "pre-deploy", "id": trigger_id, "instance_id": INSTANCE}).encode()
    response = post(web, body, sign(body))
    assert response.status_code == 202, response.text
    (backup,) = backups_on(emu)
    shown = backup["name"] + " " + backup["description"]
    for secret in (WEBHOOK_TOKEN, "demo-password"):
        assert not any(part in shown for part in fragments(secret)), shown
    assert backup["name"].startswith("predeploy-")
    assert "id-withheld" in backup["description"]


def test_ordinary_ids_stay_readable(web: str, emu: Emulator) -> None:
    body = json.dumps({"event": "pre-deploy", "id": "deploy-4711", "instance_id": INSTANCE})
    response = post(web, body.encode(), sign(body.encode()))
    assert response.status_code == 202, response.text
    assert response.json()["backup"]["name"].startswith("predeploy-deploy-4711-")


# --- sent_at: when the sender made the event, from signed material only -----------------------


@pytest.fixture
def settings(set_env: SetEnv) -> Any:
    set_env(**source_settings())
    return load_settings()


def only_trigger(records: tuple[Any, ...]) -> Trigger:
    (trigger,) = records
    assert isinstance(trigger, Trigger)
    return trigger


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_the_webhook_timestamp_is_not_the_events_time(settings: Any) -> None:
    """Standard Webhooks senders re-sign every retry with a fresh webhook-timestamp (it must pass
    the 5-minute check): it is the attempt's time, not the event's, so it is no ``sent_at``."""
    body = json.dumps({"event": "pre-deploy", "id": "d", "instance_id": INSTANCE}).encode()
    headers = lowered(sign(body, WEBHOOK_SECRET))
    generic.verify(headers, body, settings)
    assert only_trigger(generic.parse(headers, body, settings).records).sent_at is None


def test_a_retry_hours_later_finds_the_backup_of_the_first_attempt(
    web: str, emu: Emulator, settings: Any
) -> None:
    """The first attempt made the backup two hours ago; the sender's retry now is signed with
    a new webhook-timestamp. The look-up must still reach back to that backup."""
    body = json.dumps({"event": "pre-deploy", "id": "rel-9", "instance_id": INSTANCE}).encode()
    trigger = only_trigger(generic.parse(lowered(sign(body)), body, settings).records)
    seeded = emu.add_backup(
        INSTANCE,
        backup_type="manual",
        name=backup_name_for(trigger),
        description=description_for(trigger),
        begin_time=datetime.now(tz=UTC) - timedelta(hours=2),
    )
    response = post(web, body, sign(body, msg_id="msg_retry"))
    assert response.status_code == 200, response.text
    assert answer_backup(response) == seeded
    assert successful_creates(emu) == 0


def test_sent_at_from_the_senders_bodies(settings: Any) -> None:
    """The samples as dated in their files (parsed only: no window applies)."""
    body, headers = sample("github-deployment", callback=None)
    trigger = only_trigger(github.parse(lowered(headers), body, settings).records)
    assert (
        trigger.sent_at is not None and trigger.sent_at.isoformat() == "2026-11-27T10:00:00+00:00"
    )

    body, headers = sample("gitlab-deployment", callback=None)
    trigger = only_trigger(gitlab.parse(lowered(headers), body, settings).records)
    assert (
        trigger.sent_at is not None and trigger.sent_at.isoformat() == "2026-11-27T10:00:00+01:00"
    )

    body, headers = sample("cloudevents-structured", callback=None)
    trigger = only_trigger(cloudevents.parse(lowered(headers), body, settings).records)
    assert (
        trigger.sent_at is not None and trigger.sent_at.isoformat() == "2026-11-27T10:00:00+00:00"
    )

    body, headers = sample("functiongraph-smn", callback=None)
    first = functiongraph.parse(lowered(headers), body, settings).records[0]
    assert isinstance(first, Trigger) and first.sent_at is not None
    assert first.sent_at.isoformat() == "2026-11-27T10:00:00+00:00"

    body, headers = sample("functiongraph-kafka", callback=None)
    first = functiongraph.parse(lowered(headers), body, settings).records[0]
    assert isinstance(first, Trigger) and first.sent_at is not None
    assert int(first.sent_at.timestamp()) == 1795773600


def test_github_deployment_without_created_at_has_no_time(settings: Any) -> None:
    body, headers = sample("github-deployment")
    document = json.loads(body)
    del document["deployment"]["created_at"]
    body = json.dumps(document).encode()
    assert only_trigger(github.parse(lowered(headers), body, settings).records).sent_at is None


def test_without_a_delivery_id_there_is_no_previous_key(settings: Any) -> None:
    """GITHUB_SECRET signs only the body: a delivery without X-GitHub-Delivery verifies and
    parses; the header only ever served the previous release's look-up."""
    body, headers = sample("github-deployment")
    sent = lowered({**headers, "X-Hub-Signature-256": github_signature(body, GITHUB_SECRET)})
    github.verify(sent, body, settings)
    del sent["x-github-delivery"]
    assert only_trigger(github.parse(sent, body, settings).records).previous_key is None
