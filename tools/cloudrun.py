"""Print one Service of template.yaml in the form Cloud Run takes (``gcloud run services replace``).

    python -m tools.cloudrun --image REGION-docker.pkg.dev/PROJECT/REPO/predeploy-backup:0.1.0 \\
        --env OS_USERNAME=deployer --env OS_PROJECT_ID=... \\
        --secret OS_PASSWORD=predeploy-os-password \\
        --secret WEBHOOK_SECRET=predeploy-webhook-secret > service.yaml
    gcloud run services replace service.yaml --region=europe-west3

Cloud Run implements the Knative Serving API but takes one Service per file and no Kubernetes
Secrets, security contexts or readiness probes. So: the Secret behind ``envFrom`` becomes one
``secretKeyRef`` per ``--secret VARIABLE=SECRET[:VERSION]`` (Secret Manager; version defaults to
``latest``), the readiness probe becomes a startup probe (a revision whose configuration is
incomplete never starts serving, as on Knative), resource requests and Kubernetes-only fields
are left out, and a cluster-local Service becomes ``run.googleapis.com/ingress: internal``.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.check_template import TEMPLATE, load

__all__ = ["cloud_run_service", "main"]

_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # Google Cloud label keys: no dots or slashes
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
_SCALE = ("autoscaling.knative.dev/minScale", "autoscaling.knative.dev/maxScale")


def cloud_run_service(
    documents: Sequence[dict[str, Any]],
    name: str = "predeploy-backup",
    image: str | None = None,
    secrets: Sequence[str] = (),
    values: Sequence[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """The Cloud Run form of the Service ``name``, and notes on what changed."""
    found = [d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == name]
    if not found:
        raise ValueError(f"template has no Service named {name}")
    service = copy.deepcopy(found[0])
    notes: list[str] = []
    metadata = service["metadata"]
    labels = metadata.pop("labels", {}) or {}
    kept = {k: v for k, v in labels.items() if _LABEL.match(k)}
    if kept:
        metadata["labels"] = kept
    if labels.get("networking.knative.dev/visibility") == "cluster-local":
        metadata.setdefault("annotations", {})["run.googleapis.com/ingress"] = "internal"

    template = service["spec"]["template"]
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    template["metadata"] = {"annotations": {k: v for k, v in annotations.items() if k in _SCALE}}
    (container,) = template["spec"]["containers"]
    if image is not None:
        container["image"] = image
    for source in container.pop("envFrom", []):
        ref = source.get("secretRef") or source.get("configMapRef") or {}
        notes.append(
            f"envFrom {ref.get('name')} left out: Cloud Run takes each secret as "
            "--secret VARIABLE=SECRET[:VERSION]"
        )
    env = {v["name"]: v for v in container.get("env", []) if "value" in v}
    for item in values:
        name, separator, value = item.partition("=")
        if not separator or not _VARIABLE.fullmatch(name):
            raise ValueError(f"--env {item!r}: expected VARIABLE=VALUE")
        env[name] = {"name": name, "value": value}
    for item in secrets:
        variable = _secret(item)
        env[variable["name"]] = variable
    container["env"] = list(env.values())
    container.pop("securityContext", None)
    readiness = container.pop("readinessProbe", None)
    if readiness is not None:
        container["startupProbe"] = {
            "httpGet": {"path": readiness["httpGet"]["path"]},
            "periodSeconds": 2,
            "failureThreshold": 15,
        }
    resources = container.get("resources", {})
    container["resources"] = {"limits": resources.get("limits", {})}
    return service, notes


def _secret(item: str) -> dict[str, Any]:
    variable, separator, reference = item.partition("=")
    secret, _, version = reference.partition(":")
    if not separator or not _VARIABLE.fullmatch(variable) or not secret:
        raise ValueError(f"--secret {item!r}: expected VARIABLE=SECRET[:VERSION]")
    key = version or "latest"
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cloudrun", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--service", default="predeploy-backup", help="metadata.name to print")
    parser.add_argument("--image", help="the image to run (default: the template's)")
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="VARIABLE=SECRET[:VERSION]",
        help="a Secret Manager secret as an environment variable (repeatable)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VARIABLE=VALUE",
        help="a plain environment variable, e.g. OS_PROJECT_ID (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        service, notes = cloud_run_service(
            load(args.template), args.service, args.image, args.secret, args.env
        )
    except ValueError as exc:
        print(f"cloudrun: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"cloudrun: {note}", file=sys.stderr)
    sys.stdout.write(yaml.safe_dump(service, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
