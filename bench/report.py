"""The benchmark's one markdown table, with each target checked, and where it was measured."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.load import percentile
from bench.procs import ROOT

if TYPE_CHECKING:
    from bench.imports import Breakdown
    from bench.run import Growth, Plan, Results, Subject, Warm

X = "\N{MULTIPLICATION SIGN}"
COLUMNS = ("ours", "floor", "sdk", "sdk_create")
HEADER = (
    "| metric | ours | floor (framework) | SDK flow (look-up + create) | SDK, create only "
    "| target | ours against target |"
)
TOKEN_ROUTE = "POST /v3/auth/tokens"
LIST_ROUTE = "GET /v3/{project_id}/backups"
FLOOR_RATIO = 1.6


def _check(ok: bool) -> str:
    return "✅" if ok else "❌"


def _p50_p99(values: list[float], digits: int = 1) -> str:
    if not values:
        return "—"
    return f"{percentile(values, 0.5):.{digits}f} / {percentile(values, 0.99):.{digits}f}"


def _per_1000(count: int, events: int) -> str:
    return f"{count * 1000 / events:.2f}" if events else "—"


def _calls(warm: Warm) -> str:
    calls = {key: n for key, n in warm.requests.items() if key != TOKEN_ROUTE}
    if not calls:
        return "0"
    total = sum(calls.values()) / warm.events
    names = sorted({_route(key) for key in calls})
    return f"{total:.2f} ({', '.join(names)})"


def _route(key: str) -> str:
    """``GET /v3/{pid}/instances/<id>`` → ``GET …/instances/{id}``: one name per API route."""
    method, _, path = key.partition(" ")
    parts = path.strip("/").split("/")[2:]  # drop v3 and the project id
    if len(parts) == 2 and parts[0] in ("instances", "backups") and parts[1] != "create":
        parts[1] = "{id}"
    return f"{method} …/{'/'.join(parts)}"


def _clients(count: int) -> str:
    return f"{count} client" + ("s" if count > 1 else "")


class _Rows:
    """Rows of one latency group; a missing column shows "—" (or "skipped" for the SDK)."""

    def __init__(self, have_sdk: bool) -> None:
        self.lines: list[str] = []
        self._have_sdk = have_sdk

    def add(self, metric: str, cells: dict[str, str], target: str = "", verdict: str = "") -> None:
        missing = {key: "—" for key in COLUMNS}
        if not self._have_sdk:
            missing["sdk"] = missing["sdk_create"] = "skipped"
        values = [cells.get(key, missing[key]) for key in COLUMNS]
        self.lines.append(f"| {metric} | {' | '.join(values)} | {target} | {verdict} |")


def table(
    plan: Plan, all_results: list[Results], chosen: dict[str, Subject], breakdown: Breakdown
) -> list[str]:
    lines = [HEADER, "|---|---|---|---|---|---|---|"]
    for results in all_results:
        lines.append(f"| **API latency {results.latency_ms:g} ms per call** | | | | | | |")
        rows = _Rows("sdk" in chosen)
        _cold_rows(rows, plan, results)
        if results is all_results[0]:
            rows.add(
                f"import on top of the framework, median of {plan.import_runs} (ms): its "
                "biggest parts (self time per package)",
                {
                    "ours": breakdown.text(count=6).split(" + ", 1)[1],
                    "floor": f"framework {breakdown.framework_ms:.0f}",
                },
            )
        _warm_rows(rows, plan, results.warm, results.latency_ms)
        lines.extend(rows.lines)
    return lines


def growth_table(plan: Plan, all_results: list[Results], chosen: dict[str, Subject]) -> list[str]:
    """Per latency, ours and the SDK flow against 0, 1,000, 10,000 older manual backups."""
    counts = plan.history
    head = " | ".join(f"{count:,} older backups" for count in counts)
    lines = [
        f"| one client, {plan.growth_events} fresh events, then each redelivered | {head} "
        "| target | ours against target |",
        "|---" * (len(counts) + 3) + "|",
    ]
    labels = {"ours": "ours", "sdk": "SDK flow"}
    for results in all_results:
        latency = results.latency_ms
        lines.append(f"| **API latency {latency:g} ms per call** |" + " |" * (len(counts) + 2))
        for key, label in labels.items():
            runs = [results.growth.get(count, {}).get(key) for count in counts]
            if all(run is None for run in runs):
                continue
            lists = [_lists(run) for run in runs]
            verdict = ""
            if key == "ours":
                worst = max(_worst_lists(run) for run in runs if run is not None)
                verdict = f"at most {worst:.2f} {_check(worst <= 1.0)}"
            lines.append(
                f"| {label}: list requests per event, fresh / redelivered | {' | '.join(lists)} "
                f"| {'≤ 1 page' if key == 'ours' else ''} | {verdict} |"
            )
            lines.append(
                f"| {label}: latency p50, fresh / redelivered (ms) | "
                + " | ".join(_growth_latency(run) for run in runs)
                + " | | |"
            )
            lines.append(
                f"| {label}: answered non-2xx | "
                + " | ".join(_growth_failures(run) for run in runs)
                + " | | |"
            )
    return lines


def _lists(run: Growth | None) -> str:
    if run is None:
        return "—"
    fresh = run.lists_fresh / max(1, len(run.fresh.samples))
    again = run.lists_again / max(1, len(run.again.samples))
    return f"{fresh:.2f} / {again:.2f}"


def _worst_lists(run: Growth) -> float:
    return max(
        run.lists_fresh / max(1, len(run.fresh.samples)),
        run.lists_again / max(1, len(run.again.samples)),
    )


def _growth_latency(run: Growth | None) -> str:
    if run is None or not run.fresh.ok or not run.again.ok:
        return "—"
    fresh = percentile([s.seconds * 1000 for s in run.fresh.ok], 0.5)
    again = percentile([s.seconds * 1000 for s in run.again.ok], 0.5)
    return f"{fresh:.1f} / {again:.1f}"


def _growth_failures(run: Growth | None) -> str:
    if run is None:
        return "—"
    sent = len(run.fresh.samples) + len(run.again.samples)
    return f"{run.fresh.failures + run.again.failures} of {sent}"


def _cold_rows(rows: _Rows, plan: Plan, results: Results) -> None:
    median = {
        key: statistics.median(run.seconds for run in runs) * 1000
        for key, runs in results.cold.items()
    }
    api = {
        key: statistics.median(run.api_seconds for run in runs) * 1000
        for key, runs in results.cold.items()
    }
    verdict, target = "", "< SDK flow"
    if results.latency_ms == 0:
        target = f"≤ {FLOOR_RATIO}{X} floor; < SDK flow"
    if "ours" in median and "floor" in median:
        to_floor = median["ours"] / median["floor"]
        verdict = f"{to_floor:.2f}{X} floor"
        if results.latency_ms == 0:
            verdict += f" {_check(to_floor <= FLOOR_RATIO)}"
        if "sdk" in median:
            to_sdk = median["ours"] / median["sdk"]
            verdict += f"; {to_sdk:.2f}{X} SDK flow {_check(to_sdk < 1.0)}"
    rows.add(
        f"cold start: spawn → first event answered, median of {plan.cold_runs} (ms)",
        {key: f"{value:.0f}" for key, value in median.items() if key in COLUMNS},
        target,
        verdict,
    )
    rows.add(
        "… of which the API calls' own time, median (ms)",
        {key: f"{value:.0f}" for key, value in api.items() if key in COLUMNS},
    )
    if "ours_aksk" in median:
        aksk = median["ours_aksk"]
        verdict = f"{aksk / median['floor']:.2f}{X} floor" if "floor" in median else ""
        if "sdk" in median:
            verdict += f"; {aksk / median['sdk']:.2f}{X} SDK"
        rows.add(
            "cold start of ours with AK/SK signing, as the SDK (ms)",
            {"ours": f"{aksk:.0f}"},
            "",
            verdict,
        )
    failed = {
        key: sum(run.status not in (200, 202) for run in runs)
        for key, runs in results.cold.items()
        if key in COLUMNS
    }
    rows.add("cold starts answered non-2xx", {key: str(n) for key, n in failed.items()})


def _warm_rows(rows: _Rows, plan: Plan, warm: dict[str, Warm], latency_ms: float) -> None:
    for clients, name in ((1, "single"), (plan.clients, "multi")):
        phases = {key: getattr(value, name) for key, value in warm.items()}
        verdict, target = "", ""
        if "ours" in phases and "sdk" in phases and phases["sdk"].rate:
            ratio = phases["ours"].rate / phases["sdk"].rate
            verdict = f"{ratio:.2f}{X} SDK flow"
            if latency_ms == 0:
                target = "≥ SDK flow"
                verdict += f" {_check(ratio >= 1.0)}"
        rows.add(
            f"warm throughput, {_clients(clients)} (events/s)",
            {key: f"{phase.rate:.0f}" for key, phase in phases.items()},
            target,
            verdict,
        )
        rows.add(
            f"latency p50 / p99, {_clients(clients)} (ms)",
            {key: _p50_p99([s.seconds * 1000 for s in phase.ok]) for key, phase in phases.items()},
        )
    rows.add(
        f"function's CPU per event, 1 client / {plan.clients} clients (ms)",
        {key: f"{w.cpu_single_ms:.2f} / {w.cpu_multi_ms:.2f}" for key, w in warm.items()},
    )
    rows.add(
        "emulator's own time per event, p50, 1 client (ms)",
        {key: f"{percentile(w.emulator_ms, 0.5):.2f}" for key, w in warm.items() if w.emulator_ms},
    )
    verdict = ""
    if "ours" in warm and warm["ours"].overhead_ms:
        p50 = percentile(warm["ours"].overhead_ms, 0.5)
        verdict = f"{p50:.2f} ms {_check(p50 <= 2.0)}"
    rows.add(
        "overhead per event (latency minus emulator time), p50 / p99, 1 client (ms)",
        {key: _p50_p99(w.overhead_ms, 2) for key, w in warm.items() if w.overhead_ms},
        "p50 ≤ 2 ms",
        verdict,
    )
    rows.add("API calls per event, besides IAM", {key: _calls(w) for key, w in warm.items()})
    verdict = ""
    if "ours" in warm:
        ours = warm["ours"]
        verdict = f"{ours.tokens} in {ours.events:,} events {_check(ours.tokens <= 1)}"
    rows.add(
        "IAM token requests per 1000 events",
        {key: _per_1000(w.tokens, w.events) for key, w in warm.items()},
        "1 per process per token lifetime",
        verdict,
    )
    for host, name in (("api", "TaurusDB API"), ("iam", "IAM")):
        verdict = ""
        if "ours" in warm:
            opened = warm["ours"].connections.get(host, 0)
            verdict = f"{opened} in {warm['ours'].events:,} events {_check(opened <= plan.clients)}"
        rows.add(
            f"new TCP connections to the {name} host per 1000 events",
            {key: _per_1000(w.connections.get(host, 0), w.events) for key, w in warm.items()},
            f"≤ 1 per worker thread ({plan.clients}) per host",
            verdict,
        )
    rows.add(
        f"worker RSS after {plan.checkpoint_1:,} events (MiB)",
        {key: f"{w.rss_1 / 1024:.1f}" for key, w in warm.items()},
    )
    rows.add(
        f"worker RSS after {plan.checkpoint_2:,} events (MiB)",
        {key: f"{w.rss_2 / 1024:.1f}" for key, w in warm.items()},
    )
    verdict = ""
    if "ours" in warm:
        growth = warm["ours"].rss_2 / warm["ours"].rss_1 - 1
        verdict = f"{growth:+.1%} {_check(growth < 0.05)}"
    rows.add(
        f"memory growth {plan.checkpoint_1:,} → {plan.checkpoint_2:,} events",
        {key: f"{w.rss_2 / w.rss_1 - 1:+.1%}" for key, w in warm.items()},
        "< 5%",
        verdict,
    )
    rows.add(
        "warm events answered non-2xx",
        {key: f"{w.failures} of {w.events:,}" for key, w in warm.items()},
    )


def versions(python: Path, names: tuple[str, ...]) -> str:
    """Python's and the named distributions' versions, as installed for ``python``."""
    code = (
        "import platform, sys; from importlib.metadata import version as v; "
        "print(' '.join([f'Python {platform.python_version()};'] + "
        "[f'{n} {v(n)}' for n in sys.argv[1:]]))"
    )
    result = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def environment(python: Path, sdk: Path | None) -> list[str]:
    """Machine, date, versions and commit, as lines of a markdown list."""
    cpu, memory = "unknown CPU", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    function_names = ("functions-framework", "waitress", "flask", "httpx", "pydantic")
    lines = [
        f"- machine: {os.cpu_count()} CPUs ({cpu}){memory}; {system}",
        f"- date: {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC",
        f"- ours and floor ({_venv_name(python)}): {versions(python, function_names)}",
    ]
    if sdk is not None:
        sdk_names = ("huaweicloudsdkgaussdb", "huaweicloudsdkcore", "requests", "waitress")
        lines.append(f"- SDK reference ({_venv_name(sdk)}): {versions(sdk, sdk_names)}")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if commit:
        lines.append(f"- commit: {commit}")
    return lines


def _venv_name(python: Path) -> str:
    venv = python.parent.parent
    try:
        return str(venv.relative_to(ROOT))
    except ValueError:
        return str(venv)
