"""The container image and the FunctionGraph bootstrap, checked without a container engine.

The Dockerfile is parsed (base image, user, environment, start command), and its start command
and the bootstrap are run for real from the repository, each answering ``GET /healthz``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import ROOT

VENV_BIN = str(Path(sys.executable).parent)


def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        found.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def env_of(parsed: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in parsed:
        if keyword == "ENV":
            for item in shlex.split(arguments):
                name, _, value = item.partition("=")
                values[name] = value
    return values


def cmd_argv(parsed: list[tuple[str, str]]) -> list[str]:
    (cmd,) = [arguments for keyword, arguments in parsed if keyword == "CMD"]
    argv = json.loads(cmd)  # exec form: the process gets signals, no shell stays in between
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for_health(process: subprocess.Popen[bytes], url: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"the server exited with {process.returncode}: {output}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def run(
    argv: list[str], env: dict[str, str], processes: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        argv,
        cwd="/",
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    processes.append(process)
    return process


# --- Dockerfile ---------------------------------------------------------------------------


def test_base_image_is_a_pinned_slim_python() -> None:
    (base,) = [arguments for keyword, arguments in instructions() if keyword == "FROM"]
    found = re.fullmatch(r"python:3\.(\d+)-slim(-[a-z]+)?", base)
    assert found, base
    assert int(found.group(1)) >= 11  # pyproject: requires-python >= 3.11


def test_runs_as_uid_1003_not_root() -> None:
    parsed = instructions()
    users = [
        (index, arguments) for index, (keyword, arguments) in enumerate(parsed) if keyword == "USER"
    ]
    assert users, "no USER: the image would run as root"
    index, user = users[-1]
    assert user == "1003:1003"  # numeric, so runAsNonRoot can verify it; FunctionGraph's UID/GID
    after = [keyword for keyword, _ in parsed[index + 1 :]]
    assert "RUN" not in after and "COPY" not in after
    creates = " ".join(arguments for keyword, arguments in parsed if keyword == "RUN")
    assert "--uid 1003" in creates and "--gid 1003" in creates


def test_installs_the_runtime_requirements_only() -> None:
    parsed = instructions()
    assert ("COPY", "requirements.txt ./") in parsed
    runs = [arguments for keyword, arguments in parsed if keyword == "RUN"]
    assert any("pip install" in run and "-r requirements.txt" in run for run in runs)
    assert not any("requirements-dev.txt" in run for run in runs)


def image_argv(root: Path = ROOT) -> list[str]:
    """The Dockerfile's start command, with the image's /app/ pointing at ``root``."""
    argv = [part.replace("/app/", f"{root}/") for part in cmd_argv(instructions())]
    return [sys.executable if part == "python" else part for part in argv]


def test_start_command_runs_server_py_from_the_environment() -> None:
    """server.py (waitress in front of the app), not functions-framework's gunicorn."""
    parsed = instructions()
    assert env_of(parsed)["FUNCTION_TARGET"] == "webhook"
    assert env_of(parsed)["PORT"] == "8000"  # FunctionGraph's port; Knative/Cloud Run set PORT
    assert cmd_argv(parsed) == ["python", "/app/server.py"]  # exec form: it gets SIGTERM
    text = (ROOT / "server.py").read_text()
    assert 'os.environ.get("FUNCTION_TARGET", "webhook")' in text
    assert 'os.environ.get("PORT", "8080")' in text
    assert 'os.environ.get("HOST", ANY_ADDRESS)' in text  # reachable from outside the container
    assert 'ANY_ADDRESS = "0.0.0.0"' in text


def test_start_command_serves_healthz(started: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    process = run(
        image_argv(),
        {"FUNCTION_TARGET": "webhook", "PORT": str(port), "HOST": "127.0.0.1"},
        started,
    )
    response = wait_for_health(process, f"http://127.0.0.1:{port}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_start_command_uses_the_target_from_the_environment(
    started: list[subprocess.Popen[bytes]],
) -> None:
    env = {"FUNCTION_TARGET": "no_such_function", "PORT": str(free_port()), "HOST": "127.0.0.1"}
    process = run(image_argv(), env, started)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert b"no_such_function" in output


def test_start_command_stops_on_sigterm(started: list[subprocess.Popen[bytes]]) -> None:
    """Platforms stop a container with SIGTERM: the server ends by itself, with status 0."""
    port = free_port()
    env = {"FUNCTION_TARGET": "webhook", "PORT": str(port), "HOST": "127.0.0.1"}
    process = run(image_argv(), env, started)
    wait_for_health(process, f"http://127.0.0.1:{port}/healthz")
    process.terminate()
    assert process.wait(timeout=15) == 0


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule for these simple patterns: a path is out when it or a parent matches."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(candidate.split("/")[-1], bare)
            ):
                return True
    return False


def test_image_holds_every_module_the_function_imports() -> None:
    script = (
        "import sys, main, json; "
        f"root = {str(ROOT)!r}; "
        "print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values()) "
        "if getattr(m, '__file__', None) and m.__file__.startswith(root + '/') "
        "and not m.__file__.startswith(sys.prefix + '/')})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    files = [str(Path(f).relative_to(ROOT)) for f in json.loads(output)]
    assert "main.py" in files and "config.py" in files
    patterns = dockerignore_patterns()
    left_out = [f for f in files if ignored(f, patterns)]
    assert left_out == [], f".dockerignore leaves out modules the function imports: {left_out}"
    assert not ignored("requirements.txt", patterns)
    development = ("tests/functional/test_webhook.py", "emulator/server.py", ".venv/bin/python")
    for development_only in development:
        assert ignored(development_only, patterns), development_only


# --- FunctionGraph bootstrap --------------------------------------------------------------


def test_bootstrap_is_valid_sh_and_executable() -> None:
    path = ROOT / "bootstrap"
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/bin/sh\n")
    shell = shutil.which("sh")
    assert shell is not None
    subprocess.run([shell, "-n", str(path)], check=True)
    text = path.read_text()
    assert "--host=127.0.0.1" in text
    assert '--port="${PREDEPLOY_BOOTSTRAP_PORT:-8000}"' in text


def test_bootstrap_serves_healthz_on_127_0_0_1(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """FunctionGraph's way: RUNTIME_CODE_ROOT is the unpacked zip, the port is 8000.

    Port 8000 is used when it is free; otherwise the test-only override moves the server.
    """
    env = {"RUNTIME_CODE_ROOT": str(ROOT)}
    port = 8000
    if not port_is_free(port):
        port = free_port()
        env["PREDEPLOY_BOOTSTRAP_PORT"] = str(port)
    process = subprocess.Popen(
        [str(ROOT / "bootstrap")],
        cwd=tmp_path,  # FunctionGraph's working directory is not the code root
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    started.append(process)
    response = wait_for_health(process, f"http://127.0.0.1:{port}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_bootstrap_refuses_a_python_older_than_3_11(tmp_path: Path) -> None:
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nexit 1\n")  # answers "too old" to the version check
    fake.chmod(0o755)
    result = subprocess.run(
        [str(ROOT / "bootstrap")],
        env={"PATH": str(tmp_path), "RUNTIME_CODE_ROOT": str(ROOT)},  # only the old python3
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    line = json.loads(result.stderr)
    assert "Python 3.11" in line["message"]


# --- FunctionGraph zip: one Python version, built and started ------------------------------

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def other_python() -> tuple[str, str] | None:
    """Another Python 3 on this machine than the one running the tests: (path, version)."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3"))
    candidates += sorted(Path("/usr/bin").glob("python3.*[0-9]"))
    for path in candidates:
        found = re.search(r"python(3\.\d+)/|versions/(3\.\d+)", str(path) + "/")
        version = subprocess.run(
            [str(path), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if found and version and version != THIS_PYTHON:
            return str(path), version
    return None


def test_zip_records_the_python_it_is_built_for(tmp_path: Path) -> None:
    from tools.package import dockerfile_python, layout

    base = re.search(r"^FROM python:(3\.\d+)-", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert base is not None and dockerfile_python() == base.group(1)  # the default version
    files = layout(tmp_path, "3.12")
    assert (tmp_path / "PYTHON_VERSION").read_text() == "3.12\n"
    assert os.access(tmp_path / "bootstrap", os.X_OK)
    for needed in ("main.py", "server.py", "config.py", "events/__init__.py", "bootstrap"):
        assert needed in files
    for kept_out in ("tests/", "emulator/", "tools/", ".venv/", "bench/", ".git/"):
        assert not any(f.startswith(kept_out) for f in files), kept_out
    assert not any(f.endswith(".env") for f in files)


def test_zip_refuses_an_unlike_python_version(tmp_path: Path) -> None:
    from tools.package import layout

    with pytest.raises(SystemExit, match=r"must look like 3\.11"):
        layout(tmp_path, "3")


@pytest.mark.parametrize("chosen_by", ["PYTHON", "PATH"])
def test_bootstrap_refuses_another_python_than_the_zips(tmp_path: Path, chosen_by: str) -> None:
    """A zip built for 3.11 on a runtime with 3.12: a clear error, never an ImportError."""
    from tools.package import layout

    other = other_python()
    if other is None:  # only one Python here: the zip claims another version instead
        built_for, (path, version) = "3.99", (sys.executable, THIS_PYTHON)
    else:
        built_for, (path, version) = THIS_PYTHON, other
    layout(tmp_path / "zip", built_for)
    env = {"RUNTIME_CODE_ROOT": str(tmp_path / "zip"), "PATH": str(tmp_path / "bin")}
    (tmp_path / "bin").mkdir()
    if chosen_by == "PYTHON":
        env["PYTHON"] = path
    else:  # the runtime's only python3 is the other version
        (tmp_path / "bin" / "python3").symlink_to(path)
    result = subprocess.run(
        [str(tmp_path / "zip" / "bootstrap")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "Error" not in result.stderr.replace('"ERROR"', "")  # no traceback, no ImportError
    message = json.loads(result.stderr)["message"]
    assert f"built for Python {built_for} (its PYTHON_VERSION file)" in message
    assert f"is Python {version}" in message
    assert f"python -m tools.package --python-version {version}" in message


def test_bootstrap_starts_the_zips_python(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """The zip's PYTHON_VERSION matches a python on PATH (here the test's own, with its
    packages standing in for the zip's): the function serves."""
    from tools.package import layout

    layout(tmp_path, THIS_PYTHON)
    port = free_port()
    process = subprocess.Popen(
        [str(tmp_path / "bootstrap")],
        cwd="/",
        env={
            "PATH": f"{VENV_BIN}:/usr/bin:/bin",
            "RUNTIME_CODE_ROOT": str(tmp_path),
            "PREDEPLOY_BOOTSTRAP_PORT": str(port),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    started.append(process)
    response = wait_for_health(process, f"http://127.0.0.1:{port}/healthz")
    assert response.json() == {"status": "ok"}
