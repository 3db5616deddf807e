"""Every recipe in integrations/ against its platform's schema (tools/check_recipes.py), each
check shown to bite on a broken copy, and the GitHub action's script run for real against the
function on the emulator."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from emulator import Emulator
from helpers import INSTANCE, ROOT, WEBHOOK_SECRET, backups_on, server_env
from tools import check_recipes
from tools.serve import function_server

RECIPES = ROOT / "integrations"
BASH = shutil.which("bash") or "/bin/bash"


def test_every_recipe_is_valid() -> None:
    assert check_recipes.check_all() == []


def test_schemas_are_the_recorded_verbatim_copies() -> None:
    """SOURCES.md records each schema's sha256; the copies in the repository match."""
    import hashlib

    sources = (RECIPES / "schemas" / "SOURCES.md").read_text()
    recorded = dict(re.findall(r"^\| (\S+\.json) \|.*\| ([0-9a-f]{64}) \|", sources, re.M))
    assert len(recorded) >= 7
    for name, digest in recorded.items():
        data = (RECIPES / "schemas" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name


def test_schema_with_a_remote_ref_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "remote.json").write_text(json.dumps({"$ref": "https://example.com/s.json"}))
    monkeypatch.setenv("RECIPE_SCHEMAS_DIR", str(tmp_path))
    check_recipes.load_schema.cache_clear()
    try:
        with pytest.raises(ValueError, match="outside the schema"):
            check_recipes.load_schema("remote.json")
    finally:
        check_recipes.load_schema.cache_clear()


def _broken(tmp_path: Path, relative: str, change: Callable[[str], str]) -> list[str]:
    """The check of ``relative`` run on a copy changed by ``change``."""
    source = RECIPES / relative
    text = source.read_text()
    changed = change(text)
    assert changed != text, "the mutation did not apply"
    copy = tmp_path / source.name
    copy.write_text(changed)
    return check_recipes.CHECKS[relative](copy)


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        # GitHub: a composite run step without shell fails at load time (research §12)
        ("github/action.yml", "      shell: bash\n", "", "runs.steps.0"),
        ("github/action.yml", "${{ inputs.timeout }}", "${{ inputs.timeout-s }}", "timeout-s"),
        # GitLab: an unknown job keyword; an input used but not declared
        ("gitlab/predeploy-gate.yml", "  artifacts:\n", "  artefacts:\n", "artefacts"),
        ("gitlab/predeploy-gate.yml", "$[[ inputs.image ]]", "$[[ inputs.img ]]", "inputs.img"),
        # Kubernetes Job (Argo CD, Helm): a restart policy the API refuses
        (
            "argocd/presync-job.yaml",
            "restartPolicy: Never",
            "restartPolicy: Sometimes",
            "restartPolicy",
        ),
        (
            "argocd/presync-job.yaml",
            "argocd.argoproj.io/hook: PreSync",
            "argocd.argoproj.io/hook: PostSync",
            "PreSync",
        ),
        ("helm/predeploy-backup-hook.yaml", "  backoffLimit: 2", "  backofLimit: 2", "backofLimit"),
        (
            "helm/predeploy-backup-hook.yaml",
            ".Values.predeployBackup.url | quote",
            ".Values.predeployBackup.endpoint | quote",
            "no sample value",
        ),
        # Tekton: a param that does not exist; an unknown step field
        (
            "tekton/predeploy-backup-task.yaml",
            "$(params.timeout-seconds)",
            "$(params.timeout)",
            "$(params.timeout)",
        ),
        ("tekton/predeploy-backup-task.yaml", "      args: [", "      argz: [", "argz"),
        # Azure: an unknown step key; a check whose inputs name no such field
        (
            "azure/predeploy-gate.yml",
            "    displayName: Pre-deploy backup",
            "    displayname2: Pre-deploy backup",
            "displayname2",
        ),
        (
            "azure/invoke-rest-api-check.json",
            '"successCriteria"',
            '"successCriterion"',
            "successCriterion",
        ),
        ("azure/invoke-rest-api-check.json", '"retryInterval": 6', '"retryInterval": 2', "<= 10"),
        # Spinnaker: waiting without a status path; a typo in a field name
        ("spinnaker/webhook-stage.json", '  "statusJsonPath": "$.status",\n', "", "statusJsonPath"),
        ("spinnaker/orca-local.yml", "successStatuses:", "successStatus:", "successStatus"),
        # Jenkins: a GString that interpolates the secret; an unbalanced block
        ("jenkins/Jenkinsfile", "sh '''", 'sh """', "interpolates a secret"),
        (
            "jenkins/Jenkinsfile",
            "        stage('Deploy') {\n",
            "        stage('Deploy')\n",
            "unbalanced",
        ),
    ],
)
def test_each_check_refuses_a_broken_recipe(
    tmp_path: Path, relative: str, old: str, new: str, expected: str
) -> None:
    def change(text: str) -> str:
        if old == "sh '''":  # a GString that interpolates the secret
            return text.replace(old, new, 1).replace(
                "--wait --timeout 3600\n                    '''",
                '--wait --timeout 3600 # ${PREDEPLOY_WEBHOOK_SECRET}\n                    """',
            )
        return text.replace(old, new, 1)

    problems = _broken(tmp_path, relative, change)
    assert any(expected in p for p in problems), problems


def _fenced(page: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page, flags=re.DOTALL)


def test_docs_examples_are_valid_pipelines() -> None:
    """docs/pipelines.md: the GitHub workflow and GitLab pipeline examples validate too."""
    page = (ROOT / "docs" / "pipelines.md").read_text()
    workflows = [yaml.safe_load(b) for b in _fenced(page, "yaml") if "runs-on:" in b]
    gitlab = [yaml.safe_load(b) for b in _fenced(page, "yaml") if "include:" in b]
    assert workflows and gitlab
    for workflow in workflows:
        assert check_recipes.check_github_workflow(workflow, "docs workflow") == []
    validator = Draft7Validator(check_recipes.load_schema("gitlab-ci.json"))
    for pipeline in gitlab:
        assert list(validator.iter_errors(pipeline)) == []


# --- the GitHub action's script, run as the runner runs it -------------------------------------


@pytest.fixture
def server(emu: Emulator) -> Iterator[str]:
    with function_server(server_env(emu.url)) as url:
        yield url


def _action_script() -> str:
    action: Any = yaml.safe_load((RECIPES / "github" / "action.yml").read_text())
    (step,) = action["runs"]["steps"]
    assert step["shell"] == "bash"
    return str(step["run"])


def test_github_action_script_backs_up_waits_and_sets_outputs(
    server: str, emu: Emulator, tmp_path: Path
) -> None:
    outputs = tmp_path / "github_output"
    outputs.touch()
    env = {
        "PATH": os.environ["PATH"],
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "777",
        "GITHUB_JOB": "deploy",
        "PREDEPLOY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PREDEPLOY_TOKEN": "",
        "GATE_URL": server,
        "GATE_INSTANCES": INSTANCE,
        "GATE_ID": "",
        "GATE_NAME": "",
        "GATE_DESCRIPTION": "",
        "GATE_CALLBACK_URL": "",
        "GATE_WAIT": "true",
        "GATE_TIMEOUT": "60",
        "GATE_PYTHON": "python3",
        "PYTHONPATH": str(RECIPES / "github" / ".." / ".." / "client"),
        "PYTHONUNBUFFERED": "1",
    }
    # GitHub runs `bash --noprofile --norc -eo pipefail {0}` for shell: bash
    script = tmp_path / "step.sh"
    script.write_text(_action_script())
    done = subprocess.run(
        [BASH, "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    (backup,) = backups_on(emu)
    assert values["backup-id"] == backup["id"] and values["status"] == "SUCCEEDED"
    assert json.loads(values["result"])["trigger_id"] == "github:acme/shop:777:deploy"
    assert WEBHOOK_SECRET not in done.stdout + done.stderr + outputs.read_text()


def test_github_action_script_fails_the_step_with_the_clients_exit_code(
    server: str, emu: Emulator, tmp_path: Path
) -> None:
    emu.put_instance(INSTANCE, fail_backups=True)
    outputs = tmp_path / "github_output"
    outputs.touch()
    env = {
        "PATH": os.environ["PATH"],
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(outputs),
        "PREDEPLOY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PREDEPLOY_TOKEN": "",
        "GATE_URL": server,
        "GATE_INSTANCES": INSTANCE,
        "GATE_ID": "deploy-88",
        "GATE_NAME": "",
        "GATE_DESCRIPTION": "",
        "GATE_CALLBACK_URL": "",
        "GATE_WAIT": "true",
        "GATE_TIMEOUT": "60",
        "GATE_PYTHON": "python3",
        "PYTHONPATH": str(ROOT / "client"),
    }
    script = tmp_path / "step.sh"
    script.write_text(_action_script())
    done = subprocess.run(
        [BASH, "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "status=FAILED" in outputs.read_text()
