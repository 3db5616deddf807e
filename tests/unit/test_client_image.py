"""The client's container image (client/Dockerfile), read as a build would: Python plus this
package and nothing else, a non-root user, ``predeploy-gate`` as the entry point (the Argo CD,
Helm and Tekton recipes pass only arguments). No Docker daemon is needed to check that."""

from __future__ import annotations

import json
import re

from helpers import ROOT

DOCKERFILE = ROOT / "client" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_installs_only_the_client_and_runs_it_as_non_root() -> None:
    steps = _instructions()
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "FROM" and re.match(r"python:3\.(9|1[0-9])", steps[0][1])
    (install,) = [args for kind, args in steps if kind == "RUN" and "pip install" in args]
    assert "--no-deps" in install  # standard library only: nothing else may come in
    (user,) = [args for kind, args in steps if kind == "USER"]
    assert not user.startswith(("0", "root"))
    (entrypoint,) = [args for kind, args in steps if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["predeploy-gate"]
    assert kinds.index("USER") > kinds.index("RUN")  # installed as root, run as the user


def test_recipes_use_the_entrypoint_or_the_command_it_installs() -> None:
    argo = (ROOT / "integrations" / "argocd" / "presync-job.yaml").read_text()
    helm = (ROOT / "integrations" / "helm" / "predeploy-backup-hook.yaml").read_text()
    tekton = (ROOT / "integrations" / "tekton" / "predeploy-backup-task.yaml").read_text()
    assert "command:" not in argo and "args:" in argo  # the image's entry point runs
    assert "exec predeploy-gate" in helm
    assert "predeploy-gate --url" in tekton
