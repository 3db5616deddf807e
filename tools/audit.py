"""CI's dependency audit: ``pip-audit`` on requirements.txt, failing only on known vulnerabilities.

    python -m tools.audit [requirements.txt]

pip-audit needs a vulnerability service (PyPI's JSON API or OSV). Where that cannot be reached,
or answers for none of the dependencies (a mirror without the JSON API says "not found" for
each), the audit did not happen: that is reported as a warning, not as a failure and not as a
pass. Exit status: 1 when a vulnerability is known, else 0.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404 # runs pip-audit, a fixed command
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["Verdict", "classify", "main"]


@dataclass(frozen=True)
class Verdict:
    failed: bool
    message: str


def classify(returncode: int, stdout: str, stderr: str) -> Verdict:
    """What one pip-audit run (``--format json``) means for CI."""
    try:
        report: Any = json.loads(stdout)
        dependencies = report["dependencies"]
        if not isinstance(dependencies, list):
            raise TypeError("dependencies is not a list")
    except (ValueError, KeyError, TypeError):
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(False, f"WARNING pip-audit could not run (exit {returncode}): {last[:300]}")
    vulnerable = [
        f"{dep.get('name')} {dep.get('version')}: "
        + ", ".join(str(v.get("id")) for v in dep["vulns"])
        for dep in dependencies
        if isinstance(dep, dict) and dep.get("vulns")
    ]
    if vulnerable:
        return Verdict(True, "pip-audit found known vulnerabilities:\n  " + "\n  ".join(vulnerable))
    skipped = [dep for dep in dependencies if isinstance(dep, dict) and dep.get("skip_reason")]
    audited = len(dependencies) - len(skipped)
    if audited == 0:
        return Verdict(
            False,
            "WARNING pip-audit could not audit: the vulnerability service answered for none of "
            f"the {len(dependencies)} dependencies (unreachable, or a registry without it)",
        )
    if returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(False, f"WARNING pip-audit ended with exit {returncode}: {last[:300]}")
    note = f" ({len(skipped)} could not be audited)" if skipped else ""
    return Verdict(False, f"pip-audit: no known vulnerabilities in {audited} dependencies{note}")


def main(argv: list[str] | None = None) -> int:
    requirements = (argv if argv is not None else sys.argv[1:]) or ["requirements.txt"]
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        requirements[0],
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "30",
    ]
    try:
        run = subprocess.run(  # noqa: S603 # nosec B603 # fixed argv: this interpreter
            command, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"WARNING pip-audit could not run: {type(exc).__name__}")
        return 0
    verdict = classify(run.returncode, run.stdout, run.stderr)
    print(verdict.message)
    return 1 if verdict.failed else 0


if __name__ == "__main__":
    sys.exit(main())
