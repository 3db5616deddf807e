"""Which files of the project go into the image: ``.dockerignore`` read as Docker reads it.

    python -m tools.dockerignore            # one path per line: what `COPY . ./` copies

Docker's rules (docs.docker.com, "Build context: .dockerignore files", and the moby
``patternmatcher`` package that implements them): one pattern per line, ``#`` starts a comment
line, surrounding whitespace and a leading ``/`` are dropped, the pattern is cleaned like a
path; ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``, ``[...]``
a class, ``\\`` escapes; ``**`` matches any number of directories, zero included; a pattern
that matches a directory leaves out all it holds; ``!`` makes an exception; the last pattern
that matches a path decides.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pattern", "context_files", "excluded", "parse"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _regex(pattern: str) -> re.Pattern[str]:
    """The pattern as moby's patternmatcher compiles it."""
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1  # "**/" is "**"
                out += ".*" if i + 1 >= len(pattern) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(ch)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def parse(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore file, in order."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        line = line[1:].strip() if exclusion else line
        line = posixpath.normpath(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        patterns.append(Pattern(line, exclusion, _regex(line)))
    return patterns


def excluded(path: str, patterns: list[Pattern]) -> bool:
    """Whether Docker leaves ``path`` (relative, ``/``-separated) out of the build context."""
    parts = path.split("/")
    parents = ["/".join(parts[:n]) for n in range(1, len(parts))]
    result = False
    for pattern in patterns:
        match = bool(pattern.regex.match(path)) or any(pattern.regex.match(p) for p in parents)
        if match:
            result = not pattern.exclusion
    return result


def context_files(root: Path = ROOT) -> Iterator[str]:
    """Every file under ``root`` that ``COPY . ./`` puts into the image."""
    ignore = root / ".dockerignore"
    patterns = parse(ignore.read_text(encoding="utf-8")) if ignore.is_file() else []
    prune = not any(p.exclusion for p in patterns)  # else a later "!" may take a file back
    for directory, subdirectories, files in os.walk(root):
        if prune:
            here = Path(directory).relative_to(root).as_posix()
            subdirectories[:] = [
                d for d in subdirectories if not excluded(posixpath.join(here, d), patterns)
            ]
        for name in files:
            relative = (Path(directory) / name).relative_to(root).as_posix()
            if not excluded(relative, patterns):
                yield relative


def main() -> int:
    for path in sorted(context_files()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
