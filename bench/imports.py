"""``python -m bench.imports [--runs N] [--python PATH]``: what importing the function costs.

``python -X importtime -c "import functions_framework; import main"``, ``--runs`` times in fresh
processes of the function's interpreter (``bench/.venv-function`` as deployed, when it exists):
the framework's own import, then ``main``'s on top of it, split by package: the self time of
every module ``main`` pulls in that the framework had not loaded, summed per top-level package
(``pydantic_settings``, ``httpx``, ``config``, ``events``, …), so the parts add up to ``main``'s
total. Medians over the runs; the cold start table shows the biggest parts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.procs import ROOT, clean_env

_CODE = "import functions_framework; import main"


@dataclass(frozen=True)
class Breakdown:
    """Median milliseconds: the framework, ``main`` on top, and ``main``'s parts."""

    framework_ms: float
    main_ms: float
    parts: dict[str, float]

    def top(self, count: int) -> list[tuple[str, float]]:
        return sorted(self.parts.items(), key=lambda item: -item[1])[:count]

    def text(self, count: int = 5) -> str:
        parts = ", ".join(f"{name} {ms:.0f}" for name, ms in self.top(count))
        return f"framework {self.framework_ms:.0f} + main {self.main_ms:.0f} ({parts})"


def _parse(stderr: str) -> list[tuple[int, int, int, str]]:
    """(depth, self µs, cumulative µs, module) per line of ``-X importtime``'s report."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((depth, int(own.split(":")[1]), int(cumulative), name.strip()))
    return rows


def one_run(python: Path) -> tuple[float, float, dict[str, float]]:
    """One fresh process: framework ms, main ms, and main's ms per top-level package."""
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", _CODE],
        cwd=ROOT,
        env=clean_env({}),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = _parse(result.stderr)
    top = [(i, us, name) for i, (depth, _, us, name) in enumerate(rows) if depth == 0]
    framework = next(us for _, us, name in top if name == "functions_framework")
    main_at = next(i for i, _, name in top if name == "main")
    # importtime lists children before their parent: what main pulled in lies between the
    # framework's line (the last top-level one before main's) and main's own.
    start = max(i for i, _, _ in top if i < main_at) + 1
    parts: dict[str, float] = {}
    for _, own, _, name in rows[start : main_at + 1]:
        package = name.split(".")[0]
        parts[package] = parts.get(package, 0.0) + own / 1000
    return framework / 1000, rows[main_at][2] / 1000, parts


def measure(python: Path, runs: int) -> Breakdown:
    results = [one_run(python) for _ in range(runs)]
    names = {name for _, _, parts in results for name in parts}
    return Breakdown(
        framework_ms=statistics.median(r[0] for r in results),
        main_ms=statistics.median(r[1] for r in results),
        parts={name: statistics.median(r[2].get(name, 0.0) for r in results) for name in names},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--python", type=Path)
    args = parser.parse_args(argv)
    deployed = ROOT / "bench" / ".venv-function" / "bin" / "python"
    python = args.python or (deployed if deployed.exists() else Path(sys.executable))
    found = measure(python, args.runs)
    print(f"import (median of {args.runs}, ms): {found.text(count=len(found.parts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
