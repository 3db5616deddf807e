"""``python -m bench [--smoke]``: the benchmark, one markdown table, every number from this run.

Three functions under the same load, against the same emulator, on the same machine:

``ours``        this project's ``webhook`` (IAM token auth, as configured by default; cold
                start also with AK/SK signing)
``floor``       the smallest functions-framework HTTP function (bench/floor/main.py)
``sdk``         the same flow written with the official ``huaweicloudsdkgaussdb`` SDK: the
                look-up, then the create (bench/sdk_reference/main.py ``webhook``, in its own
                virtualenv bench/.venv-sdk)
``sdk_create``  the SDK's one call alone, no look-up (``create_only``): the API's own floor

Each is measured with no added latency and with 50 ms per API call (see emulator_host.py).
Growth: ours and the SDK flow against an instance with 0, 1,000 and 10,000 older manual
backups (``--seed-backups``), fresh events and their redeliveries, one client.
The cold start comes with the import breakdown of ``main`` (bench/imports.py).
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

from bench import imports, report
from bench.emulator_host import ACCESS_KEY, SECRET_KEY
from bench.load import Events, Exited, PhaseResult, Replay, Sample, first_answer, run_phase
from bench.procs import (
    BENCH,
    ROOT,
    EmulatorHost,
    Running,
    cpu_seconds,
    emulator_host,
    rss_kib,
    spawn,
    stop,
)
from bench.report import LIST_ROUTE, TOKEN_ROUTE

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
    history: tuple[int, ...] = (0, 1_000, 10_000)
    growth_events: int = 20
    growth_seconds: float = 15.0
    import_runs: int = 9


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
    history=(0, 150),
    growth_events=2,
    growth_seconds=3.0,
    import_runs=1,
)


@dataclass(frozen=True)
class Subject:
    key: str
    label: str
    python: Path
    source: Path
    settings: Callable[[EmulatorHost], dict[str, str]]
    target: str = "webhook"


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
        source = BENCH / "sdk_reference" / "main.py"
        found["sdk"] = Subject("sdk", "SDK", sdk_python, source, _aksk_settings)
        found["sdk_create"] = Subject(
            "sdk_create", "SDK create only", sdk_python, source, _aksk_settings, "create_only"
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
    growth: dict[int, dict[str, Growth]] = field(default_factory=dict)


def measure_cold(subject: Subject, host: EmulatorHost, events: Events, logs: Path) -> Cold:
    """From spawning the process to the answer to its first signed event."""
    run, answered, status = _started(subject, host, logs, events)
    stop(run.process)
    return Cold(run.spawned, answered, status)


def measure_warm(
    subject: Subject, host: EmulatorHost, events: Events, plan: Plan, logs: Path
) -> Warm:
    """One process: checkpoint 1, one client, N clients, checkpoint 2; counted from its spawn."""
    host.reset()
    run, _, status = _started(subject, host, logs, events)
    try:
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


def _spawn(subject: Subject, host: EmulatorHost, logs: Path) -> Running:
    log = logs / f"{subject.key}.log"
    return spawn(subject.python, subject.source, subject.settings(host), log, target=subject.target)


def _started(
    subject: Subject, host: EmulatorHost, logs: Path, events: Events
) -> tuple[Running, float, int]:
    """A spawned function and the (answer time, status) of its first event.

    A process that ends before it opens its port (its free port taken meanwhile by another
    process) is spawned again on another port, up to three times.
    """
    for attempt in range(3):
        run = _spawn(subject, host, logs)
        try:
            answered, status = first_answer(run.port, events, run.spawned + 60, alive=run.alive)
        except Exited:
            stop(run.process)
            if attempt == 2:
                raise
            continue
        except BaseException:
            stop(run.process)
            raise
        return run, answered, status
    raise AssertionError("unreachable")


@dataclass
class Growth:
    """One function against an instance with a history: fresh events, then their redeliveries."""

    fresh: PhaseResult
    again: PhaseResult
    lists_fresh: int
    lists_again: int


def measure_growth(
    subject: Subject, host: EmulatorHost, plan: Plan, logs: Path, prefix: str
) -> Growth:
    """Events for the instance with the seeded history only, one client, one at a time."""
    warm_up = Events(WEBHOOK_SECRET, host.instances[1:2], f"{prefix}-warm-up")
    run, _, _ = _started(subject, host, logs, warm_up)
    try:
        events = Events(WEBHOOK_SECRET, host.instances[:1], prefix, keep=True)

        def phase(source: Events | Replay, count: int) -> tuple[PhaseResult, int]:
            before = host.stats()["requests"].get(LIST_ROUTE, 0)
            result = run_phase(
                run.port, source, clients=1, count=count, max_seconds=plan.growth_seconds
            )
            return result, host.stats()["requests"].get(LIST_ROUTE, 0) - before

        fresh, lists_fresh = phase(events, plan.growth_events)
        again, lists_again = phase(events.redeliveries(), len(events.sent))
    finally:
        stop(run.process)
    return Growth(fresh, again, lists_fresh, lists_again)


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
        for key in ("ours", "sdk", "sdk_create", "floor"):
            if key in chosen:
                progress(f"{latency:g} ms: warm runs of {chosen[key].label}")
                with emulator_host(latency) as host:
                    events = Events(WEBHOOK_SECRET, host.instances, f"{prefix}-{key}")
                    results.warm[key] = measure_warm(chosen[key], host, events, plan, logs)
        for count in plan.history:
            with emulator_host(latency, seed_backups=count) as host:
                for key in ("ours", "sdk"):
                    if key in chosen:
                        progress(f"{latency:g} ms: {count:,} older backups, {chosen[key].label}")
                        results.growth.setdefault(count, {})[key] = measure_growth(
                            chosen[key], host, plan, logs, f"{prefix}-history-{count}-{key}"
                        )
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

    progress("import breakdown")
    breakdown = imports.measure(chosen["ours"].python, plan.import_runs)
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        all_results = measure(plan, chosen, Path(logs), progress)
    lines = [
        f"Benchmark ({'SMOKE: tiny counts, the numbers mean nothing' if args.smoke else 'full'})",
        "",
        *report.table(plan, all_results, chosen, breakdown),
        "",
        *report.growth_table(plan, all_results, chosen),
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
