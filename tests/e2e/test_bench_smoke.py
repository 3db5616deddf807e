"""The benchmark works end to end: smoke mode prints its table with every row.

It checks that the table is complete and that every event was answered 2xx (the benchmark
measured a working function), never a time: the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT

ROWS = (
    "cold start: spawn → first event answered",
    "… of which the API calls' own time",
    "cold start of ours with AK/SK signing",
    "cold starts answered non-2xx",
    "warm throughput, 1 client",
    "latency p50 / p99, 1 client",
    "warm throughput, 8 clients",
    "latency p50 / p99, 8 clients",
    "function's CPU per event",
    "emulator's own time per event",
    "overhead per event",
    "API calls per event",
    "IAM token requests per 1000 events",
    "new TCP connections to the TaurusDB API host",
    "new TCP connections to the IAM host",
    "worker RSS after 100 events",
    "worker RSS after 300 events",
    "memory growth",
    "warm events answered non-2xx",
)


GROWTH_ROWS = (
    "ours: list requests per event, fresh / redelivered",
    "ours: latency p50, fresh / redelivered (ms)",
    "ours: answered non-2xx",
)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_smoke_run_prints_every_row_for_both_latencies(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--quiet", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert result.stdout.strip() == text.strip()
    assert "| **API latency 0 ms per call** |" in text
    assert "| **API latency 50 ms per call** |" in text
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    for row in ROWS:
        matching = [line for line in lines if cells(line)[0].startswith(row)]
        assert len(matching) == 2, f"row {row!r}: {len(matching)} lines instead of 2"
    imports = [line for line in lines if cells(line)[0].startswith("import on top of the")]
    assert len(imports) == 1
    assert cells(imports[0])[1].startswith("main ")
    assert cells(imports[0])[2].startswith("framework ")
    for row in GROWTH_ROWS:
        found = [cells(line) for line in lines if cells(line)[0] == row]
        assert len(found) == 2, f"row {row!r}: {len(found)} lines instead of 2"
        if row == "ours: answered non-2xx":  # 0 and 150 older backups, every event answered
            assert all(line[1:3] == ["0 of 4", "0 of 4"] for line in found)
        if row.startswith("ours: list requests"):  # at least one look-up per event
            assert all(float(cell.split(" / ")[0]) >= 1.0 for cell in found[0][1:3])
    assert "- machine: " in text
    assert "- date: " in text
    assert "functions-framework" in text

    # ours and the floor answered every event (the SDK column may say "skipped")
    for line in lines:
        name, ours, floor, *_ = cells(line)
        if name == "warm events answered non-2xx":
            assert ours == "0 of 300"
            assert floor == "0 of 300"
        if name == "cold starts answered non-2xx":
            assert (ours, floor) == ("0", "0")
        if name.startswith("API calls per event"):
            assert float(ours.split()[0]) >= 1.0  # one create per event, plus any look-ups
            assert "POST …/backups/create" in ours
