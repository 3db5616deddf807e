"""Check template.yaml offline: each document against the schema kept in the repository, then
the links between documents (every event sink is a Service of the file running ``event``).

    python -m tools.check_template [template.yaml]

Prints one line per problem (document, field path, rule) and exits 1, or confirms and exits 0.
No cluster and no network: the schema (``deploy/schema/template.schema.json``) holds the rules
of the Knative fields the template uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

__all__ = ["ROOT", "SCHEMA", "TEMPLATE", "check", "check_file", "function_target", "load"]

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SCHEMA = ROOT / "deploy" / "schema" / "template.schema.json"
_SERVICE_API = "serving.knative.dev/v1"


def load(path: Path) -> list[Any]:
    """The YAML documents of ``path``, empty ones left out."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def check(documents: Sequence[Any]) -> list[str]:
    """Every problem of the documents, as ``document N (Kind name): path: rule`` lines."""
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    problems = []
    for number, document in enumerate(documents, start=1):
        label = _label(number, document)
        errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
        for error in errors:
            path = ".".join(str(part) for part in error.absolute_path) or "(document)"
            problems.append(f"{label}: {path}: {error.message}")
    if not problems:
        problems += _links(documents)
    return problems


def check_file(path: Path) -> list[str]:
    try:
        documents = load(path)
    except yaml.YAMLError as exc:
        return [f"not valid YAML: {exc}"]
    if not documents:
        return ["no documents"]
    return check(documents)


def function_target(service: dict[str, Any]) -> str | None:
    """The ``FUNCTION_TARGET`` a Service's container runs."""
    (container,) = service["spec"]["template"]["spec"]["containers"]
    for variable in container.get("env", []):
        if variable["name"] == "FUNCTION_TARGET":
            return str(variable.get("value"))
    return None


def _label(number: int, document: Any) -> str:
    if isinstance(document, dict):
        kind = document.get("kind", "?")
        name = (document.get("metadata") or {}).get("name", "?")
        return f"document {number} ({kind} {name})"
    return f"document {number}"


def _links(documents: Sequence[dict[str, Any]]) -> list[str]:
    """What a schema cannot say: names, scale bounds and where events go."""
    problems = []
    seen: set[tuple[str, str]] = set()
    services = {}
    for number, document in enumerate(documents, start=1):
        key = (document["kind"], document["metadata"]["name"])
        if key in seen:
            problems.append(f"{_label(number, document)}: metadata.name: used twice")
        seen.add(key)
        if document["kind"] == "Service":
            services[document["metadata"]["name"]] = document
            problems += _scale(number, document)
    targets = [function_target(service) for service in services.values()]
    if targets.count("webhook") != 1:
        problems.append("template: exactly one Service must run FUNCTION_TARGET=webhook")
    for number, document in enumerate(documents, start=1):
        field = {"Trigger": "subscriber", "KafkaSource": "sink"}.get(document["kind"])
        if field is None:
            continue
        ref = document["spec"][field].get("ref")
        where = f"{_label(number, document)}: spec.{field}.ref"
        if ref is None or ref["apiVersion"] != _SERVICE_API or ref["kind"] != "Service":
            problems.append(f"{where}: must name a Service ({_SERVICE_API}) of this file")
        elif ref["name"] not in services:
            problems.append(f"{where}: no Service named {ref['name']} in this file")
        elif function_target(services[ref["name"]]) != "event":
            problems.append(f"{where}: Service {ref['name']} does not run FUNCTION_TARGET=event")
    return problems


def _scale(number: int, service: dict[str, Any]) -> list[str]:
    annotations = (service["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    low = annotations.get("autoscaling.knative.dev/minScale")
    high = annotations.get("autoscaling.knative.dev/maxScale")
    if low is not None and high is not None and int(high) > 0 and int(low) > int(high):
        return [f"{_label(number, service)}: minScale {low} is above maxScale {high}"]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    problems = check_file(args.template)
    for problem in problems:
        print(f"{args.template.name}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.template.name}: {len(load(args.template))} documents valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
