"""Env files: example.env names every setting; no env file or key reaches git or the image
(Docker's own .dockerignore rules, tools/dockerignore.py); local tools read .env, the function
never does."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config import SECRET_FILE_FIELDS, Settings, load_settings
from helpers import ROOT
from tools import dockerignore, localenv

EXAMPLE = ROOT / "example.env"


def settings_read() -> set[str]:
    """Every variable the function reads: its fields, their aliases, the *_FILE variants."""
    names = {name.upper() for name in Settings.model_fields}
    for field in Settings.model_fields.values():
        choices = getattr(field.validation_alias, "choices", [])
        names |= {c for c in choices if isinstance(c, str)}
    return names | {f"{name.upper()}_FILE" for name in SECRET_FILE_FIELDS}


def example_names() -> list[str]:
    return re.findall(r"^#?([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), flags=re.MULTILINE)


def test_example_env_names_every_setting_once_and_no_other() -> None:
    names = example_names()
    assert sorted(set(names)) == sorted(settings_read())
    assert len(names) == len(set(names))


def test_example_env_sets_nothing_and_holds_no_secret() -> None:
    """Safe as it is: every setting commented out (defaults), every secret left empty."""
    assert localenv.read_dotenv(EXAMPLE) == {}
    for line in EXAMPLE.read_text().splitlines():
        name, _, value = line.lstrip("#").partition("=")
        if any(word in name for word in ("SECRET", "PASSWORD", "TOKEN", "KEY")):
            assert value == "", line


# --- git --------------------------------------------------------------------------------------

GIT = shutil.which("git")
ENV_FILES = [".env", "predeploy-backup.env", ".serve.env", "deploy/prod.env", "a/b/.env"]


@pytest.mark.skipif(GIT is None, reason="needs git")
@pytest.mark.parametrize("path", ENV_FILES)
def test_git_ignores_env_files_in_any_folder(path: str) -> None:
    result = subprocess.run(
        [str(GIT), "check-ignore", "--no-index", "-q", path], cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"git would not ignore {path}"


@pytest.mark.skipif(GIT is None, reason="needs git")
def test_git_keeps_example_env() -> None:
    result = subprocess.run(
        [str(GIT), "check-ignore", "--no-index", "-q", "example.env"], cwd=ROOT, check=False
    )
    assert result.returncode == 1


# --- docker: the matcher against Docker's documented examples -------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "out"),
    [
        # docs.docker.com, "Build context", .dockerignore examples
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "temp.txt", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("*/*/temp*", "somedir/temporary.txt", False),
        ("temp?", "tempa", True),
        ("temp?", "tempab", False),
        ("temp?", "tempa/file", True),  # a matched directory takes its content with it
        ("**/*.go", "a.go", True),
        ("**/*.go", "x/y/z.go", True),
        ("*.env", "x/prod.env", False),  # "*" does not cross "/": the point
        ("**/*.env", "x/prod.env", True),
        ("**/*.env", ".env", True),
        ("**/.env", "x/y/.env", True),
        ("/build", "build/lib/x.py", True),
        ("docs", "docs/a.md", True),
        ("docs", "x/docs/a.md", False),
        ("[a-c].txt", "b.txt", True),
        ("[^a-c].txt", "b.txt", False),
        ("\\*.txt", "*.txt", True),
        ("\\*.txt", "a.txt", False),
    ],
)
def test_matcher_follows_docker(pattern: str, path: str, out: bool) -> None:
    assert dockerignore.excluded(path, dockerignore.parse(pattern)) is out


def test_exceptions_and_the_last_match_wins() -> None:
    # docs.docker.com: "*.md", "!README*.md", "README-secret.md"
    patterns = dockerignore.parse("# comment\n*.md\n!README*.md\nREADME-secret.md\n")
    assert dockerignore.excluded("CHANGELOG.md", patterns)
    assert not dockerignore.excluded("README.md", patterns)
    assert dockerignore.excluded("README-secret.md", patterns)


def _planted(tmp_path: Path) -> Path:
    """A build context with this project's .dockerignore and the files a user might leave."""
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    for name in [
        "main.py",
        "config.py",
        ".env",
        "predeploy-backup.env",
        ".serve.env",
        "example.env",
        "deploy/prod.env",
        "clients/.env",
        "events/samples/local.env",
        "a/b/c/secrets.env",
        "tls/server.key",
        "tls/server.pem",
        "keystore.p12",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("SECRET=1\n")
    return tmp_path


SECRET_FILE = re.compile(r"(^|/)(\.env|[^/]*\.env|[^/]*\.(pem|key|p12))$")


def test_image_holds_no_env_file_or_key_wherever_it_lies(tmp_path: Path) -> None:
    files = set(dockerignore.context_files(_planted(tmp_path)))
    assert {"main.py", "config.py"} <= files
    assert [f for f in files if SECRET_FILE.search(f)] == []


def test_the_projects_image_holds_no_env_file_and_no_secret() -> None:
    files = sorted(dockerignore.context_files(ROOT))
    assert "main.py" in files and "requirements.txt" in files
    assert [f for f in files if SECRET_FILE.search(f)] == []
    secret = re.compile(r"whsec_[A-Za-z0-9+/]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----")
    leaking = [f for f in files if secret.search((ROOT / f).read_text(errors="replace"))]
    assert leaking == []


def test_the_tool_lists_the_image_files() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "tools.dockerignore"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == sorted(dockerignore.context_files(ROOT))


# --- .env: local tools read it, the function never ------------------------------------------


def test_dotenv_format(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nexport A=1\nB = 'two words'\nC=\"x#y\"\nD=plain # note\nE=\n#F=off\n"
    )
    assert localenv.read_dotenv(path) == {
        "A": "1",
        "B": "two words",
        "C": "x#y",
        "D": "plain",
        "E": "",
    }


def test_dotenv_mistake_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nnot a setting\n")
    with pytest.raises(ValueError, match=r"\.env:2: expected NAME=value"):
        localenv.read_dotenv(path)


def test_the_shell_wins_over_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=from-file\nB=from-file\n")
    assert localenv.load({"A": "from-shell"}, path) == {"A": "from-shell", "B": "from-file"}


def test_the_function_never_reads_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("OS_USERNAME=from-dotenv\nLOG_LEVEL=DEBUG\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OS_USERNAME", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    settings = load_settings()
    assert settings.os_username is None
    assert settings.log_level == "INFO"
