"""The trigger id of this pipeline run and job, stable across retries of the same run.

Re-running a failed step (or the whole job) must report the backup the first attempt made,
not make another, so attempt counters (``GITHUB_RUN_ATTEMPT``, ``CI_JOB_ID``,
``SYSTEM_JOBATTEMPT``) are left out on purpose. Systems that set nothing usable inside the
step (Tekton, Argo CD, Helm, Spinnaker) pass ``--id`` from their own run identity; the recipes
in ``integrations/`` do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["MAX_ID", "SYSTEMS", "ci_system", "fit", "trigger_id"]

MAX_ID = 200  # the function's limit for an event's id

# system name, the variable that says "running here", the variables that make the id
SYSTEMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("github", "GITHUB_ACTIONS", ("GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_JOB")),
    ("gitlab", "GITLAB_CI", ("CI_PROJECT_ID", "CI_PIPELINE_ID", "CI_JOB_NAME")),
    ("azure", "TF_BUILD", ("BUILD_BUILDID", "SYSTEM_STAGENAME", "SYSTEM_JOBNAME")),
    ("jenkins", "JENKINS_URL", ("BUILD_TAG", "STAGE_NAME")),
)
# Optional parts: present in some setups only (Azure classic has no stage; Jenkins scripted
# pipelines outside a stage have no STAGE_NAME).
_OPTIONAL = frozenset({"SYSTEM_STAGENAME", "STAGE_NAME"})


def ci_system(env: Mapping[str, str]) -> str | None:
    for name, marker, _ in SYSTEMS:
        if env.get(marker):
            return name
    return None


def trigger_id(env: Mapping[str, str]) -> tuple[str | None, str]:
    """(the id or None, a sentence saying where it came from or what is missing)."""
    for name, marker, parts in SYSTEMS:
        if not env.get(marker):
            continue
        missing = [p for p in parts if not env.get(p) and p not in _OPTIONAL]
        if missing:
            return None, f"{name} CI detected but {', '.join(missing)} not set: pass --id"
        values = [env[p] for p in parts if env.get(p)]
        return fit(":".join([name, *values])), f"from {name} CI ({'+'.join(parts)})"
    return None, "no CI system detected (GitHub, GitLab, Azure, Jenkins): pass --id"


def fit(value: str) -> str:
    """An id within the function's limit: a long one keeps its start and gets a hash of all."""
    if len(value) <= MAX_ID:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return value[: MAX_ID - 17] + ":" + digest
