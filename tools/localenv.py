"""The local tools' settings: this environment over a ``.env`` file at the project's root.

Only the local tools (``./dev.sh serve``, ``tools.invoke``, the demo) read ``.env``; the
deployed function reads its environment alone (``config.py`` never looks at a file it was not
told about). The format is the common one: ``NAME=value`` per line, ``#`` comments, an optional
``export`` in front, and optional single or double quotes around the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DOTENV", "load", "read_dotenv"]

ROOT = Path(__file__).resolve().parent.parent
DOTENV = ROOT / ".env"
_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def read_dotenv(path: Path) -> dict[str, str]:
    """The settings of an env file; a line that is no setting is an error naming the line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _LINE.fullmatch(line)
        if found is None:
            raise ValueError(f"{path.name}:{number}: expected NAME=value")
        name, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()  # an unquoted value ends at a comment
        values[name] = value
    return values


def load(environ: Mapping[str, str] | None = None, path: Path | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) over ``path`` (default ``.env``): the shell wins."""
    current = dict(os.environ if environ is None else environ)
    path = path or DOTENV
    if not path.is_file():
        return current
    return {**read_dotenv(path), **current}
