"""Build the FunctionGraph code package (HTTP function): ``predeploy-backup.zip``.

    python -m tools.package                       # for the Dockerfile's Python (3.11)
    python -m tools.package --python-version 3.12 # for a runtime that has Python 3.12

The zip holds the image's files (``.dockerignore`` read by Docker's rules, tools/dockerignore.py),
``bootstrap`` at its root, the runtime dependencies built by pip for Linux x86-64 and one Python
version, and that version in ``PYTHON_VERSION``: ``bootstrap`` starts only that Python, and
says so clearly when the runtime has another one instead of failing later with an
``ImportError``. The version is stated once, here (default: the Dockerfile's ``FROM
python:X.Y-…``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess  # nosec B404 # runs pip, our own interpreter
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tools.dockerignore import context_files

__all__ = ["dockerfile_python", "layout", "main"]

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = "PYTHON_VERSION"


def dockerfile_python(dockerfile: Path = ROOT / "Dockerfile") -> str:
    """``3.11`` for ``FROM python:3.11-slim-bookworm``: the version the image runs."""
    found = re.search(r"^FROM python:(3\.\d+)", dockerfile.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"{dockerfile}: no 'FROM python:3.X' line")
    return found.group(1)


def layout(target: Path, python_version: str, root: Path = ROOT) -> list[str]:
    """The zip's files (no dependencies yet) in ``target``; returns their relative paths."""
    if not re.fullmatch(r"3\.\d+", python_version):
        raise SystemExit(f"--python-version must look like 3.11, not {python_version!r}")
    copied: list[str] = []
    for relative in sorted(context_files(root)):  # what the image's COPY . ./ takes
        if (root / relative).is_symlink():
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target / relative)
        copied.append(relative)
    shutil.copy2(root / "bootstrap", target / "bootstrap")  # left out of the image, not the zip
    (target / VERSION_FILE).write_text(python_version + "\n")
    return [*copied, "bootstrap", VERSION_FILE]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__)
    parser.add_argument("--python-version", default=dockerfile_python())
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="work folder")
    parser.add_argument("--output", type=Path, default=ROOT / "predeploy-backup.zip")
    args = parser.parse_args(argv)
    if args.build.exists():
        shutil.rmtree(args.build)
    args.build.mkdir(parents=True)
    layout(args.build, args.python_version)
    subprocess.run(  # noqa: S603  # nosec B603 # pip of this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(args.build),
            "--requirement",
            str(ROOT / "requirements.txt"),
            "--platform",
            "manylinux2014_x86_64",
            "--implementation",
            "cp",
            "--python-version",
            args.python_version,
            "--only-binary=:all:",
        ],
        check=True,
    )
    with zipfile.ZipFile(args.output, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(args.build.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo.from_file(path, path.relative_to(args.build).as_posix())
                with path.open("rb") as source:
                    archive.writestr(info, source.read(), zipfile.ZIP_DEFLATED)
    print(f"{args.output} for Python {args.python_version} (FunctionGraph runtime 'http')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
