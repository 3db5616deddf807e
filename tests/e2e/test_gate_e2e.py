"""End to end: the function on the emulator (a real server), ``predeploy-gate`` installed with
``pip install ./client`` into a fresh virtual environment (nothing else gets installed), on the
oldest Python the machine has (3.9 where present) and on the current one.

Each outcome has its exit code (client/predeploy_gate/cli.py): 0 completed, 1 failed,
3 refused, 4 still running at --timeout, 5 unreachable or busy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator import Emulator
from helpers import (
    INSTANCE,
    ROOT,
    WEBHOOK_SECRET,
    WEBHOOK_TOKEN,
    backups_on,
    event_requests,
    server_env,
)
from tools.serve import free_port, function_server

OLDEST = Path.home() / ".pyenv" / "versions"


def _oldest_python() -> str | None:
    """The oldest Python >= 3.9 on the machine, if older than the current one."""
    candidates = sorted(OLDEST.glob("3.*/bin/python3")) if OLDEST.is_dir() else []
    candidates += [Path(p) for p in ("/usr/bin/python3.9", "/usr/bin/python3.10")]
    found: list[tuple[tuple[int, int], str]] = []
    for path in candidates:
        if not path.exists():
            continue
        version = subprocess.run(
            [str(path), "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if len(version) == 2:
            major_minor = (int(version[0]), int(version[1]))
            if (3, 9) <= major_minor < sys.version_info[:2]:
                found.append((major_minor, str(path)))
    return min(found)[1] if found else None


PYTHONS = [pytest.param(sys.executable, id="current")]
_old = _oldest_python()
if _old is not None:
    PYTHONS.append(pytest.param(_old, id="oldest"))


@dataclass(frozen=True)
class Installed:
    gate: Path
    python: Path


@pytest.fixture(scope="session")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client built from a copy of ``client/`` (the source tree stays clean), offline."""
    work = tmp_path_factory.mktemp("client-build")
    source = work / "client"
    shutil.copytree(ROOT / "client", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
    )
    (wheel,) = (work / "dist").glob("predeploy_gate-*.whl")
    return wheel


@pytest.fixture(scope="session", params=PYTHONS)
def installed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, client_wheel: Path
) -> Installed:
    """A fresh venv with the client and nothing else added.

    ``client_wheel`` is pip's own build of ``./client`` (the step ``pip install ./client``
    takes), made with the dev environment's setuptools so that no test needs the network;
    the fresh venv then installs it with ``--no-index``.
    """
    python = request.param
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    freeze = [*pip, "list", "--format=freeze"]
    before = set(subprocess.run(freeze, capture_output=True, text=True, check=True).stdout.split())
    target = [str(client_wheel)]
    subprocess.run([*pip, "install", "--quiet", "--no-index", *target], check=True)
    after = set(subprocess.run(freeze, capture_output=True, text=True, check=True).stdout.split())
    assert [line.split("==")[0] for line in after - before] == ["predeploy-gate"]
    return Installed(gate=venv / "bin" / "predeploy-gate", python=venv / "bin" / "python")


@pytest.fixture
def server(emu: Emulator) -> Iterator[str]:
    env = server_env(emu.url, WEBHOOK_TOKEN=WEBHOOK_TOKEN)
    with function_server(env) as url:
        yield url


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> object:
        return json.loads(self.stdout.strip().splitlines()[-1])


def gate(installed: Installed, *args: str, env: dict[str, str] | None = None) -> Run:
    environment = {"PATH": os.environ["PATH"], "PREDEPLOY_WEBHOOK_SECRET": WEBHOOK_SECRET}
    if env is not None:
        environment = {"PATH": os.environ["PATH"], **env}
    done = subprocess.run(
        [str(installed.gate), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for secret in (WEBHOOK_SECRET, WEBHOOK_TOKEN):
        assert secret not in done.stdout + done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


def test_wait_json_exits_0_with_the_completed_backup(
    installed: Installed, server: str, emu: Emulator
) -> None:
    run = gate(
        installed,
        "--url",
        server,
        "--instance",
        INSTANCE,
        "--id",
        "deploy-e2e-1",
        "--wait",
        "--json",
        "--timeout",
        "60",
    )
    assert run.code == 0, run.stderr
    result = run.json
    assert isinstance(result, dict)
    assert result["status"] == "SUCCEEDED"
    assert result["instance_id"] == INSTANCE and result["trigger_id"] == "deploy-e2e-1"
    (backup,) = backups_on(emu)
    assert result["backup_id"] == backup["id"] and backup["status"] == "COMPLETED"
    assert result["job_id"]  # the first delivery learns the job
    assert "SUCCEEDED" in run.stderr


def test_rerun_of_the_same_ci_job_reports_the_same_backup(
    installed: Installed, server: str, emu: Emulator
) -> None:
    """GitHub Actions' re-run: same run id and job, a new attempt; one backup for both."""
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "9876543210",
        "GITHUB_JOB": "migrate",
        "PREDEPLOY_TOKEN": WEBHOOK_TOKEN,
    }
    first = gate(
        installed,
        "--url",
        server,
        "--instance",
        INSTANCE,
        "--json",
        env={**github, "GITHUB_RUN_ATTEMPT": "1"},
    )
    again = gate(
        installed,
        "--url",
        server,
        "--instance",
        INSTANCE,
        "--json",
        "--wait",
        env={**github, "GITHUB_RUN_ATTEMPT": "2"},
    )
    assert (first.code, again.code) == (0, 0), first.stderr + again.stderr
    assert isinstance(first.json, dict) and isinstance(again.json, dict)
    assert first.json["trigger_id"] == "github:acme/shop:9876543210:migrate"
    assert again.json["backup_id"] == first.json["backup_id"]
    assert again.json["status"] == "SUCCEEDED"
    assert len(backups_on(emu)) == 1


def test_failed_backup_exits_1(installed: Installed, server: str, emu: Emulator) -> None:
    emu.put_instance(INSTANCE, fail_backups=True)
    run = gate(
        installed,
        "--url",
        server,
        "--instance",
        INSTANCE,
        "--id",
        "deploy-e2e-f",
        "--wait",
        "--json",
        "--timeout",
        "60",
    )
    assert run.code == 1, run.stderr
    assert isinstance(run.json, dict) and run.json["status"] == "FAILED"
    assert [b["status"] for b in backups_on(emu)] == ["FAILED"]
    assert "backup failed" in run.stderr


def test_refused_event_exits_3_and_changes_nothing(
    installed: Installed, server: str, emu: Emulator
) -> None:
    run = gate(installed, "--url", server, "--instance", "not-an-instance", "--id", "d-1", "--json")
    assert run.code == 3, run.stderr
    assert "invalid_event" in run.stderr and "instance_id" in run.stderr
    assert isinstance(run.json, dict) and run.json["status"] is None
    assert event_requests(emu) == []


def test_wrong_secret_exits_3(installed: Installed, server: str, emu: Emulator) -> None:
    wrong = "whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC0wMDA="
    run = gate(
        installed,
        "--url",
        server,
        "--instance",
        INSTANCE,
        "--id",
        "d-2",
        env={"PREDEPLOY_WEBHOOK_SECRET": wrong},
    )
    assert run.code == 3
    assert "unauthorized" in run.stderr and wrong not in run.stderr
    assert event_requests(emu) == []


def test_still_running_at_timeout_exits_4(installed: Installed, server: str, emu: Emulator) -> None:
    emu.configure(backup_seconds=60)
    run = gate(
        installed,
        "--url",
        server,
        "--instance",
        INSTANCE,
        "--id",
        "deploy-e2e-slow",
        "--wait",
        "--json",
        "--timeout",
        "4",
    )
    assert run.code == 4, run.stderr
    assert isinstance(run.json, dict) and run.json["status"] == "RUNNING"
    assert [b["status"] for b in backups_on(emu)] == ["BUILDING"]
    assert "still running" in run.stderr


def test_unreachable_function_exits_5_within_the_timeout(installed: Installed) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    run = gate(
        installed, "--url", url, "--instance", INSTANCE, "--id", "d-3", "--json", "--timeout", "3"
    )
    assert run.code == 5
    assert "no usable answer" in run.stderr and "retrying" in run.stderr
    assert isinstance(run.json, dict) and run.json["backup_id"] is None


def test_busy_function_exits_5_when_retry_after_passes_the_timeout(
    installed: Installed, emu: Emulator
) -> None:
    """The instance is busy (REBOOTING): the function answers 503 with Retry-After: 30; a
    retry that late would pass --timeout, so the client stops at once with 5."""
    emu.put_instance(INSTANCE, status="REBOOTING")
    env = server_env(emu.url, DEADLINE_SECONDS="1")
    with function_server(env) as url:
        run = gate(
            installed, "--url", url, "--instance", INSTANCE, "--id", "d-4", "--timeout", "20"
        )
    assert run.code == 5, run.stderr
    assert "HTTP 503 (instance_busy)" in run.stderr and "would pass the --timeout" in run.stderr
    assert backups_on(emu) == []


def test_usage_errors_exit_2(installed: Installed) -> None:
    no_credentials = gate(
        installed, "--url", "http://127.0.0.1:9/", "--instance", INSTANCE, "--id", "x", env={}
    )
    no_id = gate(installed, "--url", "http://127.0.0.1:9/", "--instance", INSTANCE)
    bad_secret = gate(
        installed,
        "--url",
        "http://127.0.0.1:9/",
        "--instance",
        INSTANCE,
        "--id",
        "x",
        env={"PREDEPLOY_WEBHOOK_SECRET": "hunter2-not-whsec"},
    )
    module = subprocess.run(
        [str(installed.python), "-m", "predeploy_gate", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert no_credentials.code == 2 and "PREDEPLOY_TOKEN" in no_credentials.stderr
    assert no_id.code == 2 and "pass --id" in no_id.stderr
    assert bad_secret.code == 2 and "hunter2" not in bad_secret.stderr
    assert module.returncode == 0 and "exit codes" in module.stdout
