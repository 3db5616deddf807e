"""template.yaml validates against the schema kept in the repository; broken copies do not."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings
from helpers import ROOT
from tools.check_template import TEMPLATE, check, check_file, function_target, load
from tools.cloudrun import cloud_run_service

Documents = list[dict[str, Any]]


@pytest.fixture
def documents() -> Documents:
    return load(TEMPLATE)


def by_kind(documents: Documents, kind: str, target: str | None = None) -> dict[str, Any]:
    for document in documents:
        if document["kind"] == kind and (target is None or function_target(document) == target):
            return document
    raise AssertionError(f"no {kind} {target or ''}")


def container(service: dict[str, Any]) -> dict[str, Any]:
    return service["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def revision_annotations(service: dict[str, Any]) -> dict[str, str]:
    return service["spec"]["template"]["metadata"]["annotations"]  # type: ignore[no-any-return]


def test_template_is_valid(documents: Documents) -> None:
    assert check(documents) == []
    assert [d["kind"] for d in documents] == ["Service", "Service", "Trigger", "KafkaSource"]


def test_template_holds_what_the_deployment_needs(documents: Documents) -> None:
    webhook = by_kind(documents, "Service", "webhook")
    events = by_kind(documents, "Service", "event")
    for service in (webhook, events):
        spec = service["spec"]["template"]["spec"]
        assert spec["containerConcurrency"] >= 1
        assert {"autoscaling.knative.dev/minScale", "autoscaling.knative.dev/maxScale"} <= set(
            revision_annotations(service)
        )
        c = container(service)
        assert c["envFrom"] == [{"secretRef": {"name": "predeploy-backup"}}]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["securityContext"]["runAsUser"] == 1003  # the image's user
        assert c["image"] == container(webhook)["image"]  # one image, two entry points
    assert events["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    name = events["metadata"]["name"]
    assert by_kind(documents, "Trigger")["spec"]["subscriber"]["ref"]["name"] == name
    assert by_kind(documents, "KafkaSource")["spec"]["sink"]["ref"]["name"] == name


def broken(documents: Documents, change: Callable[[Documents], None]) -> list[str]:
    copied = copy.deepcopy(documents)
    change(copied)
    return check(copied)


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, with ``DELETE``, remove) the field at a dotted path; digits index lists."""
    *parents, last = path.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


DELETE = object()
CONTAINER = "spec.template.spec.containers.0"
MIN_SCALE = "autoscaling.knative.dev/minScale"
MAX_SCALE = "autoscaling.knative.dev/maxScale"


def field(index: int, path: str, value: Any) -> Callable[[Documents], None]:
    return lambda docs: set_path(docs[index], path, value)


def annotation(index: int, key: str, value: Any) -> Callable[[Documents], None]:
    return lambda docs: revision_annotations(docs[index]).__setitem__(key, value)


BREAKS: list[tuple[str, int, Callable[[Documents], None], str]] = [
    # (case, index of the broken document, the change, expected in a message)
    ("wrong apiVersion", 0, field(0, "apiVersion", "serving.knative.dev/v1beta1"), "apiVersion"),
    ("Trigger apiVersion", 2, field(2, "apiVersion", "eventing.knative.dev/v1beta1"), "apiVersion"),
    ("missing image", 0, field(0, f"{CONTAINER}.image", DELETE), "'image' is a required"),
    ("image without tag", 0, field(0, f"{CONTAINER}.image", "predeploy-backup"), ".image"),
    ("scale not a number", 0, annotation(0, MAX_SCALE, "ten"), "maxScale"),
    ("scale not a string", 1, annotation(1, MIN_SCALE, 1), "minScale"),
    ("KafkaSource without sink", 3, field(3, "spec.sink", DELETE), "'sink' is a required"),
    ("KafkaSource without topics", 3, field(3, "spec.topics", []), "spec.topics"),
    ("bad bootstrap server", 3, field(3, "spec.bootstrapServers", ["kafka"]), "bootstrapServers"),
    ("typo in a field", 0, field(0, "spec.template.spec.containerConcurency", 8), "Concurency"),
    (
        "concurrency as text",
        0,
        field(0, "spec.template.spec.containerConcurrency", "8"),
        "containerConcurrency",
    ),
    (
        "liveness elsewhere",
        0,
        field(0, f"{CONTAINER}.livenessProbe.httpGet.path", "/"),
        "livenessProbe",
    ),
    ("env value a number", 0, field(0, f"{CONTAINER}.env.2.value", 8), "env.2.value"),
    ("unknown entry point", 1, field(1, f"{CONTAINER}.env.0.value", "events"), ".env"),
    ("backoff not ISO 8601", 2, field(2, "spec.delivery.backoffDelay", "2s"), "backoffDelay"),
]


@pytest.mark.parametrize(
    ("index", "change", "expected"),
    [case[1:] for case in BREAKS],
    ids=[case[0] for case in BREAKS],
)
def test_broken_copy_fails(
    documents: Documents, index: int, change: Callable[[Documents], None], expected: str
) -> None:
    problems = broken(documents, change)
    assert problems, "the broken copy passed"
    assert any(expected in problem for problem in problems), problems
    assert all(problem.startswith(f"document {index + 1} (") for problem in problems), problems


def test_reserved_variable_is_refused(documents: Documents) -> None:
    index = len(container(documents[0])["env"])  # the appended entry's position
    problems = broken(
        documents,
        lambda docs: container(docs[0])["env"].append({"name": "PORT", "value": "8000"}),
    )
    assert any(f"env.{index}.name" in problem for problem in problems), problems


def test_sink_must_be_the_event_service(documents: Documents) -> None:
    problems = broken(
        documents,
        lambda docs: set_path(docs[3], "spec.sink.ref.name", "predeploy-backup"),
    )
    assert problems == [
        "document 4 (KafkaSource predeploy-backup-kafka): spec.sink.ref: Service "
        "predeploy-backup does not run FUNCTION_TARGET=event"
    ]
    problems = broken(
        documents, lambda docs: set_path(docs[2], "spec.subscriber.ref.name", "nowhere")
    )
    assert problems == [
        "document 3 (Trigger predeploy-backup-pre-deploy): spec.subscriber.ref: no Service "
        "named nowhere in this file"
    ]


def test_min_scale_above_max_scale_fails(documents: Documents) -> None:
    def change(docs: Documents) -> None:
        revision_annotations(docs[0])[MIN_SCALE] = "20"

    assert broken(documents, change) == [
        "document 1 (Service predeploy-backup): minScale 20 is above maxScale 10"
    ]


def test_broken_file_fails_on_the_command_line(tmp_path: Path) -> None:
    text = TEMPLATE.read_text().replace('minScale: "0"', "minScale: zero", 1)
    bad = tmp_path / "template.yaml"
    bad.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "tools.check_template", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "document 1 (Service predeploy-backup)" in result.stderr
    assert "minScale" in result.stderr
    good = subprocess.run(
        [sys.executable, "-m", "tools.check_template"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "template.yaml: 4 documents valid"


def test_not_yaml_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text("kind: [unclosed\n")
    (problem,) = check_file(bad)
    assert problem.startswith("not valid YAML")


# --- the Cloud Run form (tools/cloudrun.py) ------------------------------------------------


def test_cloud_run_form_of_the_webhook_service(documents: Documents) -> None:
    service, notes = cloud_run_service(
        documents,
        image="europe-west3-docker.pkg.dev/p/r/predeploy-backup:0.1.0",
        secrets=["OS_PASSWORD=predeploy-os-password", "WEBHOOK_SECRET=predeploy-webhook:3"],
        values=["OS_PROJECT_ID=619d3e78f61b4be68bc5aa0b59edcf7b", "LOG_LEVEL=DEBUG"],
    )
    assert service["apiVersion"] == "serving.knative.dev/v1"
    assert service["metadata"] == {"name": "predeploy-backup"}  # label keys with / or . dropped
    assert revision_annotations(service) == {MIN_SCALE: "0", MAX_SCALE: "10"}
    c = container(service)
    assert c["image"] == "europe-west3-docker.pkg.dev/p/r/predeploy-backup:0.1.0"
    env = {v["name"]: v.get("value", v.get("valueFrom")) for v in c["env"]}
    assert env["FUNCTION_TARGET"] == "webhook"
    assert env["LOG_LEVEL"] == "DEBUG"  # --env replaces the template's value
    assert env["OS_PROJECT_ID"] == "619d3e78f61b4be68bc5aa0b59edcf7b"
    assert env["OS_PASSWORD"] == {
        "secretKeyRef": {"name": "predeploy-os-password", "key": "latest"}
    }
    assert env["WEBHOOK_SECRET"] == {"secretKeyRef": {"name": "predeploy-webhook", "key": "3"}}
    assert "envFrom" not in c and "securityContext" not in c and "readinessProbe" not in c
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"] == {"limits": {"cpu": "1", "memory": "256Mi"}}
    assert notes == [
        "envFrom predeploy-backup left out: Cloud Run takes each secret as "
        "--secret VARIABLE=SECRET[:VERSION]"
    ]
    assert documents == load(TEMPLATE)  # the template itself is left alone


def test_cloud_run_form_of_the_event_service_is_internal(documents: Documents) -> None:
    service, _ = cloud_run_service(documents, name="predeploy-backup-events")
    assert service["metadata"]["annotations"] == {"run.googleapis.com/ingress": "internal"}
    assert function_target(service) == "event"


def test_cloud_run_command_prints_one_yaml_document() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.cloudrun", "--secret", "OS_PASSWORD=pw-secret"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (document,) = list(yaml.safe_load_all(result.stdout))
    assert document["metadata"]["name"] == "predeploy-backup"
    bad = subprocess.run(
        [sys.executable, "-m", "tools.cloudrun", "--secret", "lower=x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "expected VARIABLE=SECRET[:VERSION]" in bad.stderr


def test_request_timeout_leaves_room_for_waiting(documents: Documents) -> None:
    """An event with "wait": true holds its request up to WAIT_TIMEOUT_SECONDS (then the
    deadline and the callbacks): each Service's timeoutSeconds must leave room for that, and
    stay within Knative's default max-revision-timeout-seconds (600)."""
    defaults = Settings.model_fields
    for document in documents:
        if document.get("kind") != "Service":
            continue
        spec = document["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in container(document).get("env", [])}
        wait = float(env.get("WAIT_TIMEOUT_SECONDS") or defaults["wait_timeout_seconds"].default)
        deadline = float(env.get("DEADLINE_SECONDS") or defaults["deadline_seconds"].default)
        callbacks = 2 * float(
            env.get("CALLBACK_RETRY_SECONDS") or defaults["callback_retry_seconds"].default
        )
        assert wait + deadline + callbacks < spec["timeoutSeconds"] <= 600, document["metadata"]
