"""``python -m bench [--smoke]``: the benchmark, one markdown table, every number from this run.

Three functions under the same load, against the same emulator, on the same machine:

``ours``   this project's ``webhook`` (IAM token auth, as configured by default; cold start
           also with AK/SK signing)
``floor``  the smallest functions-framework HTTP function (bench/floor/main.py)
``sdk``    the same flow written with the official ``huaweicloudsdkgaussdb`` SDK
           (bench/sdk_reference/main.py, in its own virtualenv bench/.venv-sdk)

Each is measured with no added latency and with 50 ms per API call (see emulator_host.py).
``--smoke`` runs every step with tiny counts, to prove the benchmark works; its numbers mean
nothing. Without bench/.venv-sdk, smoke mode leaves the SDK column out; the full run creates it.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import report
from bench.emulator_host import ACCESS_KEY, SECRET_KEY
from bench.load import Events, PhaseResult, Sample, first_answer, run_phase
from bench.procs import (
    BENCH,
    ROOT,
    EmulatorHost,
    cpu_seconds,
    emulator_host,
    rss_kib,
    spawn,
    stop,
)
from bench.report import TOKEN_ROUTE

SDK_VENV = BENCH / ".venv-sdk"
SDK_REQUIREMENTS = BENCH / "requirements-sdk.txt"
FUNCTION_VENV = BENCH / ".venv-function"
FUNCTION_REQUIREMENTS = ROOT / "requirements.txt"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789a").decode()
PROJECT_ID = "619d3e78f61b4be68bc5aa0b59edcf7b"  # the emulator's default project
OK = (200, 202)


# --------------------------------------------------------------------------------------
# what is measured, and how much of it


@dataclass(frozen=True)
class Plan:
    latencies_ms: tuple[float, ...] = (0.0, 50.0)
    cold_runs: int = 9
    cold_warmups: int = 1
    clients: int = 8
    checkpoint_1: int = 1_000
    checkpoint_2: int = 10_000
    single_events: int = 3_000
    single_seconds: float = 15.0
    multi_events: int = 5_000
    multi_seconds: float = 15.0


FULL = Plan()
SMOKE = Plan(
    cold_runs=1,
    cold_warmups=0,
    checkpoint_1=100,
    checkpoint_2=300,
    single_events=40,
    single_seconds=3.0,
    multi_events=100,
    multi_seconds=3.0,
)


@dataclass(frozen=True)
class Subject:
    key: str
    label: str
    python: Path
    source: Path
    settings: Callable[[EmulatorHost], dict[str, str]]


def _token_settings(host: EmulatorHost) -> dict[str, str]:
    return {
        "OS_AUTH_URL": f"{host.iam_url}/v3",
        "GAUSSDB_ENDPOINT": host.api_url,
        "OS_USERNAME": "demo",
        "OS_PASSWORD": "demo-password",
        "OS_USER_DOMAIN_NAME": "OTC-EU-DE-00000000001000000001",
        "OS_PROJECT_ID": PROJECT_ID,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def _aksk_settings(host: EmulatorHost) -> dict[str, str]:
    return {
        "GAUSSDB_ENDPOINT": host.api_url,
        "OS_ACCESS_KEY": ACCESS_KEY,
        "OS_SECRET_KEY": SECRET_KEY,
        "OS_PROJECT_ID": PROJECT_ID,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def _floor_settings(host: EmulatorHost) -> dict[str, str]:
    return {}


def subjects(python: Path, sdk_python: Path | None) -> dict[str, Subject]:
    """``python`` runs ours and the floor; ``sdk_python`` (if any) the SDK reference."""
    found = {
        "ours": Subject("ours", "ours", python, ROOT / "main.py", _token_settings),
        "ours_aksk": Subject("ours_aksk", "ours, AK/SK", python, ROOT / "main.py", _aksk_settings),
        "floor": Subject("floor", "floor", python, BENCH / "floor" / "main.py", _floor_settings),
    }
    if sdk_python is not None:
        found["sdk"] = Subject(
            "sdk", "SDK", sdk_python, BENCH / "sdk_reference" / "main.py", _aksk_settings
        )
    return found


# --------------------------------------------------------------------------------------
# virtualenvs: the function as deployed (requirements.txt only), the SDK in its own


def venv_python(venv: Path, requirements: Path, create: bool) -> Path | None:
    """``venv``/bin/python holding exactly ``requirements``; made here if ``create``."""
    python = venv / "bin" / "python"
    stamp = venv / f".requirements.{zlib.crc32(requirements.read_bytes())}"
    if python.exists() and stamp.exists():
        return python
    if not create:
        return None
    print(f"bench: creating {venv.relative_to(ROOT)} from {requirements.name} …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--requirement", str(requirements)], check=True)
    stamp.touch()
    return python


# --------------------------------------------------------------------------------------
# measurements


@dataclass(frozen=True)
class Cold:
    """One cold start: spawn → answer of the first event, and the API's time inside it."""

    started: float
    answered: float
    status: int
    api_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return self.answered - self.started


@dataclass
class Warm:
    single: PhaseResult
    multi: PhaseResult
    cpu_single_ms: float
    cpu_multi_ms: float
    events: int
    failures: int
    rss_1: int
    rss_2: int
    tokens: int
    connections: dict[str, int]
    requests: dict[str, int]
    emulator_ms: list[float]
    overhead_ms: list[float]


@dataclass
class Results:
    latency_ms: float
    cold: dict[str, list[Cold]] = field(default_factory=dict)
    warm: dict[str, Warm] = field(default_factory=dict)


def measure_cold(subject: Subject, host: EmulatorHost, events: Events, logs: Path) -> Cold:
    """From spawning the process to the answer to its first signed event."""
    run = spawn(subject.python, subject.source, subject.settings(host), logs / f"{subject.key}.log")
    try:
        answered, status = first_answer(run.port, events, deadline=run.spawned + 60)
        return Cold(run.spawned, answered, status)
    finally:
        stop(run.process)


def measure_warm(
    subject: Subject, host: EmulatorHost, events: Events, plan: Plan, logs: Path
) -> Warm:
    """One process: checkpoint 1, one client, N clients, checkpoint 2; counted from its spawn."""
    host.reset()
    run = spawn(subject.python, subject.source, subject.settings(host), logs / f"{subject.key}.log")
    try:
        _, status = first_answer(run.port, events, deadline=run.spawned + 60)
        served, failures = 1, int(status not in OK)
        worker = run.worker_pid()

        def phase(clients: int, count: int, seconds: float) -> tuple[PhaseResult, float]:
            """The phase's result and the worker's CPU milliseconds per event in it."""
            nonlocal served, failures
            cpu = cpu_seconds(worker)
            result = run_phase(run.port, events, clients=clients, count=count, max_seconds=seconds)
            cpu = cpu_seconds(worker) - cpu
            served += len(result.samples)
            failures += result.failures
            return result, cpu * 1000 / max(1, len(result.samples))

        phase(plan.clients, plan.checkpoint_1 - served, 900)
        rss_1 = rss_kib(worker)
        single, cpu_single = phase(1, plan.single_events, plan.single_seconds)
        multi, cpu_multi = phase(plan.clients, plan.multi_events, plan.multi_seconds)
        phase(plan.clients, plan.checkpoint_2 - served, 900)
        rss_2 = rss_kib(worker)
        stats = host.stats()
    finally:
        stop(run.process)
    emulator_ms, overhead_ms = _overhead(single, stats["timings"])
    requests: dict[str, int] = stats["requests"]
    return Warm(
        single=single,
        multi=multi,
        cpu_single_ms=cpu_single,
        cpu_multi_ms=cpu_multi,
        events=served,
        failures=failures,
        rss_1=rss_1,
        rss_2=rss_2,
        tokens=requests.get(TOKEN_ROUTE, 0),
        connections=stats["connections"],
        requests=requests,
        emulator_ms=emulator_ms,
        overhead_ms=overhead_ms,
    )


def _overhead(
    single: PhaseResult, timings: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Per event of the one-client phase: the emulator's time in it, and the rest (ms).

    One client sends one event at a time, so every API request the emulator served while an
    event was open belongs to that event.
    """
    emulator, overhead = [], []
    for sample, spent in zip(single.ok, _spent(single.ok, timings), strict=True):
        emulator.append(spent * 1000)
        overhead.append((sample.seconds - spent) * 1000)
    return emulator, overhead


def _spent(windows: list[Sample] | list[Cold], timings: list[tuple[float, float]]) -> list[float]:
    """For each (non-overlapping) window, the time its API requests begun within it took."""
    result = []
    starts = sorted((float(begun), float(seconds)) for begun, seconds in timings)
    for window in windows:
        begin, end = (
            (window.started, window.ended)
            if isinstance(window, Sample)
            else (window.started, window.answered)
        )
        low = bisect.bisect_left(starts, (begin, 0.0))
        high = bisect.bisect_right(starts, (end, float("inf")))
        result.append(_covered(starts[low:high]))
    return result


def _covered(calls: list[tuple[float, float]]) -> float:
    """The time during which at least one of ``calls`` (start, seconds; sorted) was served.

    Calls of one event may run side by side (the look-up and the pre-check): they cost the
    event their union, not their sum.
    """
    total, reach = 0.0, float("-inf")
    for begun, seconds in calls:
        end = begun + seconds
        if end > reach:
            total += end - max(begun, reach)
            reach = end
    return total


def measure(
    plan: Plan, chosen: dict[str, Subject], logs: Path, progress: Callable[[str], None]
) -> list[Results]:
    """Per latency: the cold starts against one emulator, each warm run against a fresh one."""
    all_results = []
    for latency in plan.latencies_ms:
        results = Results(latency)
        prefix = f"bench-{int(time.time())}-{latency:g}"
        with emulator_host(latency) as host:
            events = Events(WEBHOOK_SECRET, host.instances, f"{prefix}-cold")
            for attempt in range(plan.cold_warmups + plan.cold_runs):
                for subject in chosen.values():
                    progress(f"{latency:g} ms: cold start {attempt + 1} of {subject.label}")
                    cold = measure_cold(subject, host, events, logs)
                    if attempt >= plan.cold_warmups:  # the warm-ups fill caches, as on a node
                        results.cold.setdefault(subject.key, []).append(cold)
            timings = host.stats()["timings"]
        for key, runs in results.cold.items():
            spent = zip(runs, _spent(runs, timings), strict=True)
            results.cold[key] = [replace(run, api_seconds=api) for run, api in spent]
        for key in ("ours", "sdk", "floor"):
            if key in chosen:
                progress(f"{latency:g} ms: warm runs of {chosen[key].label}")
                with emulator_host(latency) as host:
                    events = Events(WEBHOOK_SECRET, host.instances, f"{prefix}-{key}")
                    results.warm[key] = measure_warm(chosen[key], host, events, plan, logs)
        all_results.append(results)
    return all_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts: proves it works")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    sdk = venv_python(SDK_VENV, SDK_REQUIREMENTS, create=not args.smoke)
    function_python = venv_python(FUNCTION_VENV, FUNCTION_REQUIREMENTS, create=not args.smoke)
    chosen = subjects(function_python or Path(sys.executable), sdk)

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        all_results = measure(plan, chosen, Path(logs), progress)
    lines = [
        f"Benchmark ({'SMOKE: tiny counts, the numbers mean nothing' if args.smoke else 'full'})",
        "",
        *report.table(plan, all_results, chosen),
        "",
        *report.environment(chosen["ours"].python, sdk),
    ]
    if sdk is None:
        lines.append(
            "- SDK reference skipped: bench/.venv-sdk is absent (smoke mode does not create it;"
            " the full run does)"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
