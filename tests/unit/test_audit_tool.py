"""CI's audit verdicts for the outputs pip-audit gives (recorded on this project's machines)."""

from __future__ import annotations

import json

from tools.audit import classify

# A mirror without PyPI's JSON API: every dependency "not found", exit 0, "No known vuln...".
ALL_SKIPPED = json.dumps(
    {
        "dependencies": [
            {
                "name": "httpx",
                "skip_reason": "Dependency not found on PyPI and could not be audited: httpx",
            },
            {
                "name": "flask",
                "skip_reason": "Dependency not found on PyPI and could not be audited: flask",
            },
        ],
        "fixes": [],
    }
)
# OSV unreachable: a traceback on stderr, nothing on stdout, exit 1.
UNREACHABLE_STDERR = (
    "Traceback (most recent call last):\n  ...\nrequests.exceptions.ConnectionError: "
    "HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded"
)
VULNERABLE = json.dumps(
    {
        "dependencies": [
            {"name": "httpx", "version": "0.28.1", "vulns": []},
            {
                "name": "urllib3",
                "version": "1.26.0",
                "vulns": [{"id": "PYSEC-2021-108", "fix_versions": ["1.26.5"]}],
            },
        ],
        "fixes": [],
    }
)
CLEAN = json.dumps(
    {
        "dependencies": [
            {"name": "httpx", "version": "0.28.1", "vulns": []},
            {"name": "flask", "version": "3.1.3", "vulns": []},
            {"name": "local-thing", "skip_reason": "could not be audited"},
        ],
        "fixes": [],
    }
)


def test_vulnerabilities_fail() -> None:
    verdict = classify(1, VULNERABLE, "")
    assert verdict.failed
    assert "urllib3 1.26.0: PYSEC-2021-108" in verdict.message


def test_unreachable_service_warns() -> None:
    verdict = classify(1, "", UNREACHABLE_STDERR)
    assert not verdict.failed
    assert verdict.message.startswith("WARNING pip-audit could not run (exit 1)")
    assert "api.osv.dev" in verdict.message


def test_nothing_audited_warns_instead_of_passing() -> None:
    verdict = classify(0, ALL_SKIPPED, "")
    assert not verdict.failed
    assert "answered for none of the 2 dependencies" in verdict.message


def test_clean_audit_passes() -> None:
    verdict = classify(0, CLEAN, "")
    assert not verdict.failed
    assert verdict.message == (
        "pip-audit: no known vulnerabilities in 2 dependencies (1 could not be audited)"
    )
