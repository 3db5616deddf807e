"""Check the pipeline recipes in ``integrations/`` offline, each against its platform's schema.

    python -m tools.check_recipes

Prints one line per problem (file, field path, rule) and exits 1, or confirms and exits 0.
Schemas: ``integrations/schemas/`` (verbatim copies, sources and checksums in its SOURCES.md),
or the folder ``RECIPE_SCHEMAS_DIR`` names. A schema with a ``$ref`` outside itself is refused,
so nothing is ever fetched. Where a platform has no schema (Jenkinsfile) or its schema is lax
(Tekton, GitLab inputs), structural checks say what the platform would refuse.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, Draft7Validator
from jsonschema.protocols import Validator

__all__ = ["CHECKS", "INTEGRATIONS", "check_all", "load_schema", "render_helm", "schemas_dir"]

ROOT = Path(__file__).resolve().parent.parent
INTEGRATIONS = ROOT / "integrations"
_EXPRESSION = r"^\s*(\$\{\{.*\}\}|\$\(.*\)|\$\[\[.*\]\])\s*$"


def schemas_dir() -> Path:
    configured = os.environ.get("RECIPE_SCHEMAS_DIR")
    return Path(configured) if configured else INTEGRATIONS / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schemas_dir() / name).read_text(encoding="utf-8"))
    outside = [ref for ref in _refs(schema) if not ref.startswith("#")]
    if outside:
        raise ValueError(f"{name}: $ref outside the schema ({outside[0]}): refused (no network)")
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _errors(validator: Validator, document: Any, label: str) -> list[str]:
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        while error.context:  # anyOf/oneOf: the alternative that got deepest says why
            error = max(error.context, key=lambda e: len(e.absolute_path))
        path = ".".join(str(part) for part in error.absolute_path) or "(document)"
        problems.append(f"{label}: {path}: {error.message[:300]}")
    return problems


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- GitHub ----------------------------------------------------------------------------------


def check_github_action(path: Path) -> list[str]:
    document = _yaml(path)
    problems = _errors(Draft7Validator(load_schema("github-action.json")), document, path.name)
    declared = set(document.get("inputs", {}))
    used = set(re.findall(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}", path.read_text()))
    problems += [f"{path.name}: inputs.{name}: used but not declared" for name in used - declared]
    problems += [f"{path.name}: inputs.{name}: declared but never used" for name in declared - used]
    for index, step in enumerate(document.get("runs", {}).get("steps", [])):
        if "${{" in str(step.get("run", "")):
            problems.append(
                f"{path.name}: runs.steps.{index}.run: no ${{{{ }}}} in scripts (use env)"
            )
    return problems


def check_github_workflow(document: Any, label: str) -> list[str]:
    """A workflow as YAML 1.1 reads it: the key ``on`` came back as ``True``; put it back."""
    if isinstance(document, dict) and True in document:
        document = {("on" if key is True else key): value for key, value in document.items()}
    return _errors(Draft7Validator(load_schema("github-workflow.json")), document, label)


# --- GitLab ----------------------------------------------------------------------------------


def check_gitlab(path: Path) -> list[str]:
    """A header (``spec: inputs``) and the jobs, two YAML documents; inputs used = declared."""
    text = path.read_text(encoding="utf-8")
    documents = list(yaml.safe_load_all(text))
    if len(documents) != 2:
        return [f"{path.name}: expected 2 YAML documents (spec header, jobs), got {len(documents)}"]
    header, jobs = documents
    validator = Draft7Validator(load_schema("gitlab-ci.json"))
    problems = _errors(validator, header, f"{path.name} (header)")
    problems += _errors(validator, jobs, f"{path.name} (jobs)")
    declared = set(header.get("spec", {}).get("inputs", {}))
    body = text.split("\n---\n", 1)[1]
    used = set(re.findall(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]", body))
    problems += [f"{path.name}: inputs.{name}: used but not declared" for name in used - declared]
    problems += [f"{path.name}: inputs.{name}: declared but never used" for name in declared - used]
    return problems


# --- Kubernetes Jobs: Argo CD, Helm ------------------------------------------------------------


def check_job(document: Any, label: str) -> list[str]:
    problems = _errors(Draft4Validator(load_schema("k8s-job-batch-v1.json")), document, label)
    spec = (document or {}).get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    if pod.get("restartPolicy") != "Never":
        problems.append(f"{label}: spec.template.spec.restartPolicy: Never (one pod per try)")
    if "activeDeadlineSeconds" not in spec:
        problems.append(f"{label}: spec.activeDeadlineSeconds: bound the hook")
    return problems


def check_argocd(path: Path) -> list[str]:
    document = _yaml(path)
    problems = check_job(document, path.name)
    annotations = document.get("metadata", {}).get("annotations", {})
    if annotations.get("argocd.argoproj.io/hook") != "PreSync":
        problems.append(f"{path.name}: metadata.annotations: argocd.argoproj.io/hook: PreSync")
    return problems


HELM_VALUES: dict[str, str] = {
    ".Values.predeployBackup.enabled": "true",
    ".Values.predeployBackup.image | quote": '"registry.example.com/predeploy-gate:0.1.0"',
    ".Values.predeployBackup.url | quote": '"https://backup.example.com/"',
    ".Values.predeployBackup.instances | quote": '"07033b125fd94a8a96896f8bcfee6ddain07"',
    ".Values.predeployBackup.timeoutSeconds | quote": '"3600"',
    ".Values.predeployBackup.secretName | quote": '"predeploy-backup"',
    "add .Values.predeployBackup.timeoutSeconds 300": "3900",
    'printf "%s-predeploy-backup" .Release.Name | trunc 63 | trimSuffix "-"': (
        "shop-predeploy-backup"
    ),
    'printf "helm:%s/%s:%d" .Release.Namespace .Release.Name .Release.Revision | quote': (
        '"helm:prod/shop:7"'
    ),
}


def render_helm(text: str, values: dict[str, str] = HELM_VALUES) -> str:
    """The template with each action replaced by its value for a sample release (shop, rev 7);
    an action not in ``values`` is an error, so every expression the template uses is known."""

    def action(match: re.Match[str]) -> str:
        before, left, expression, right, after = match.groups()
        kept = ("" if left else before) + "{}" + ("" if right else after)
        expression = expression.strip()
        if expression.startswith("/*") or expression == "end":
            return kept.format("")
        if expression.startswith("if "):
            condition = expression[3:].strip()
            if values.get(condition) != "true":
                raise ValueError(f"helm: condition {condition!r} is not set in the sample values")
            return kept.format("")
        if expression not in values:
            raise ValueError(f"helm: no sample value for {{{{ {expression} }}}}")
        return kept.format(values[expression])

    pattern = r"(\s*)\{\{(-?)(.*?)(-?)\}\}([ \t]*)"
    return re.sub(pattern, action, text, flags=re.DOTALL).lstrip()


def check_helm(path: Path) -> list[str]:
    try:
        rendered = render_helm(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [f"{path.name}: {exc}"]
    document = yaml.safe_load(rendered)
    problems = check_job(document, f"{path.name} (rendered)")
    hooks = str(document.get("metadata", {}).get("annotations", {}).get("helm.sh/hook", ""))
    if "pre-upgrade" not in hooks.split(","):
        problems.append(f"{path.name}: metadata.annotations: helm.sh/hook must include pre-upgrade")
    return problems


# --- Tekton ----------------------------------------------------------------------------------


def check_tekton(path: Path) -> list[str]:
    """The CRD schema is lax (unknown keys pass), so references are checked here too."""
    document = _yaml(path)
    problems = _errors(Draft4Validator(load_schema("tekton-task-v1.json")), document, path.name)
    spec = document.get("spec", {})
    params = {p["name"] for p in spec.get("params", [])}
    results = {r["name"] for r in spec.get("results", [])}
    text = path.read_text(encoding="utf-8")
    for name in set(re.findall(r"\$\(params\.([A-Za-z0-9_-]+)", text)) - params:
        problems.append(f"{path.name}: $(params.{name}): no such param")
    for name in set(re.findall(r"\$\(results\.([A-Za-z0-9_-]+)", text)) - results:
        problems.append(f"{path.name}: $(results.{name}): no such result")
    known_step = {
        "name",
        "image",
        "env",
        "args",
        "script",
        "command",
        "securityContext",
        "workingDir",
        "timeout",
        "onError",
        "computeResources",
        "volumeMounts",
    }
    for index, step in enumerate(spec.get("steps", [])):
        for key in set(step) - known_step:
            problems.append(f"{path.name}: spec.steps.{index}.{key}: not a step field")
        if "script" in step and "command" in step:
            problems.append(
                f"{path.name}: spec.steps.{index}: script and command exclude each other"
            )
    return problems


# --- Azure Pipelines -------------------------------------------------------------------------


@cache
def azure_schema() -> dict[str, Any]:
    """Azure's schema as plain JSON Schema: aliases become properties, ``ignoreCase`` enums and
    patterns case-insensitive, and ``${{ }}`` / ``$( )`` expressions allowed where a value has
    a fixed form (Azure reads every scalar as a string: documents load with BaseLoader)."""
    schema = copy.deepcopy(load_schema("azure-pipelines.json"))
    schema.pop("$schema", None)
    return _plain(schema)  # type: ignore[no-any-return]


def _plain(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if not isinstance(node, dict):
        return node
    raw = node.get("properties")
    aliases = {
        key: value.get("aliases", [])
        for key, value in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(value, dict)
    }
    node = {key: _plain(value) for key, value in node.items()}
    properties = node.get("properties")
    if isinstance(properties, dict):
        for key, names in aliases.items():
            for alias in names:
                properties.setdefault(alias, properties[key])
    insensitive = node.pop("ignoreCase", None) in ("value", "all")
    for keyword in ("aliases", "doNotSuggest", "firstProperty", "deprecationMessage"):
        node.pop(keyword, None)
    if "enum" in node and all(isinstance(v, str) for v in node["enum"]):
        values = "|".join(re.escape(v) for v in node.pop("enum"))
        node["pattern"] = ("(?i)" if insensitive else "") + f"^({values})$"
        node.setdefault("type", "string")
    elif "pattern" in node and insensitive and not node["pattern"].startswith("(?i)"):
        node["pattern"] = "(?i)" + node["pattern"]
    if "pattern" in node:
        return {"anyOf": [node, {"type": "string", "pattern": _EXPRESSION}]}
    return node


def check_azure_steps(path: Path) -> list[str]:
    # BaseLoader builds plain strings, lists and dicts only (no objects): what Azure reads
    text = path.read_text(encoding="utf-8")
    document = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506  # nosec B506
    validator = Draft7Validator(azure_schema())
    problems = _errors(validator, document, path.name)
    declared = {p["name"] for p in document.get("parameters", [])}
    used = set(re.findall(r"parameters\.([A-Za-z0-9_]+)", path.read_text(encoding="utf-8")))
    problems += [f"{path.name}: parameters.{n}: used but not declared" for n in used - declared]
    return problems


def check_azure_check(path: Path) -> list[str]:
    """The checks REST API body; its ``inputs`` against the InvokeRESTAPI@1 task's inputs."""
    document = json.loads(path.read_text(encoding="utf-8"))
    label = path.name
    problems = []
    if document.get("type", {}).get("name") != "Task Check":
        problems.append(f"{label}: type: a Task Check (fe1de3ee-a436-41b4-bb20-f6eb4cb879a7)")
    settings = document.get("settings", {})
    if settings.get("definitionRef", {}).get("name") != "InvokeRESTAPI":
        problems.append(f"{label}: settings.definitionRef: the InvokeRESTAPI task")
    task = next(
        alt
        for alt in azure_schema()["definitions"]["task"]["anyOf"]
        if "InvokeRESTAPI@1" in json.dumps(alt.get("properties", {}).get("task", {}))
    )
    inputs_schema = task["properties"]["inputs"]
    problems += _errors(Draft7Validator(inputs_schema), settings.get("inputs"), f"{label} inputs")
    inputs = settings.get("inputs", {})
    for key in ("headers", "body"):
        try:
            json.loads(re.sub(r"\$\([A-Za-z_.]+\)", "x", inputs.get(key, "{}")))
        except ValueError as exc:
            problems.append(f"{label}: settings.inputs.{key}: not JSON ({exc})")
    interval, timeout = settings.get("retryInterval", 0), document.get("timeout", 0)
    if inputs.get("waitForCompletion") == "false" and (not interval or timeout / interval > 10):
        problems.append(f"{label}: timeout / retryInterval must be <= 10 (Azure's rule)")
    return problems


# --- Spinnaker -------------------------------------------------------------------------------

_PRECONFIGURED_ONLY = {"label", "type", "enabled", "description", "parameters", "permissions"}


def check_spinnaker_stage(document: Any, label: str) -> list[str]:
    schema = load_schema("spinnaker-webhook-stage.json")
    problems = _errors(Draft7Validator(schema), document, label)
    known = set(schema["properties"])
    for key in set(document) - known - _PRECONFIGURED_ONLY:
        problems.append(f"{label}: {key}: not a webhook stage field")
    return problems


def check_spinnaker(path: Path) -> list[str]:
    if path.suffix == ".json":
        return check_spinnaker_stage(json.loads(path.read_text(encoding="utf-8")), path.name)
    problems = []
    for index, entry in enumerate(_yaml(path)["webhook"]["preconfigured"]):
        stage = {**entry, "type": "webhook"}  # a preconfigured stage has its own type name
        label = f"{path.name} webhook.preconfigured.{index}"
        problems += check_spinnaker_stage(stage, label)
        try:
            json.loads(re.sub(r"\$\{[^}]*\}", "x", entry.get("payload", "{}")))
        except ValueError as exc:
            problems.append(f"{label}: payload: not JSON ({exc})")
    return problems


# --- Jenkins ---------------------------------------------------------------------------------


def check_jenkinsfile(path: Path) -> list[str]:
    """No schema exists: balanced blocks, the declarative skeleton, no secret in a GString."""
    text = path.read_text(encoding="utf-8")
    label = path.name
    problems = []
    code = _groovy_code(text)
    depth = 0
    for char in code:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        problems.append(f"{label}: unbalanced braces")
    for pattern, what in (
        (r"^pipeline\s*\{", "pipeline { at the top level"),
        (r"\bagent\b", "agent"),
        (r"\bstages\s*\{", "stages {"),
        (r"\bstage\s*\(\s*''\s*\)\s*\{", "stage('name') {"),
        (r"\bsteps\s*\{", "steps {"),
        (r"\bwithCredentials\s*\(", "withCredentials(...) for the secret"),
    ):
        if not re.search(pattern, code, flags=re.MULTILINE):
            problems.append(f"{label}: missing {what}")
    for string in re.findall(r'"""(.*?)"""|"((?:[^"\\\n]|\\.)*)"', text, flags=re.DOTALL):
        body = "".join(string)
        secret = "PREDEPLOY_WEBHOOK_SECRET" in body or "PREDEPLOY_TOKEN" in body
        if secret and "$" in body:
            problems.append(f"{label}: a double-quoted string interpolates a secret")
    return problems


def _groovy_code(text: str) -> str:
    """The text without comments and string contents (braces inside them do not count)."""
    pattern = (
        r"'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|//[^\n]*|/\*.*?\*/"
    )
    return re.sub(pattern, "''", text, flags=re.DOTALL)


# --- all -------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "github/action.yml": check_github_action,
    "gitlab/predeploy-gate.yml": check_gitlab,
    "argocd/presync-job.yaml": check_argocd,
    "helm/predeploy-backup-hook.yaml": check_helm,
    "tekton/predeploy-backup-task.yaml": check_tekton,
    "azure/predeploy-gate.yml": check_azure_steps,
    "azure/invoke-rest-api-check.json": check_azure_check,
    "spinnaker/webhook-stage.json": check_spinnaker,
    "spinnaker/orca-local.yml": check_spinnaker,
    "jenkins/Jenkinsfile": check_jenkinsfile,
}


def check_all(root: Path = INTEGRATIONS) -> list[str]:
    problems = []
    for relative, check in CHECKS.items():
        path = root / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
            continue
        problems += check(path)
    return problems


def main() -> int:
    problems = check_all()
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{len(CHECKS)} recipes valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
