"""``python -m bench.profile cold|warm [--latency-ms N] [--events N] [--html FILE]``.

Where a benchmark target is missed, this shows where the time goes, with pyinstrument
(``pip install -r bench/requirements-bench.txt``):

``cold``  the import of the function and its first signed event, in one fresh process
          (what a cold start costs beyond the framework's own start)
``warm``  ``--events`` events after a warm-up: the per-event path

The function runs in this process through ``functions_framework.create_app(...)``'s test
client, against the benchmark's emulator host, so the profile holds only the function's code
and the framework's request handling, not gunicorn's socket loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pyinstrument import Profiler

from bench.load import Events
from bench.procs import ROOT, emulator_host
from bench.run import WEBHOOK_SECRET, _aksk_settings, _token_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("mode", choices=("cold", "warm"))
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--aksk", action="store_true", help="AK/SK signing instead of a token")
    parser.add_argument("--html", type=Path, help="write pyinstrument's HTML report here")
    args = parser.parse_args(argv)

    with emulator_host(args.latency_ms) as host:
        settings = _aksk_settings(host) if args.aksk else _token_settings(host)
        os.environ.update(settings)
        events = Events(WEBHOOK_SECRET, host.instances, f"profile-{int(time.time())}")
        profiler = Profiler(interval=0.0002)
        if args.mode == "cold":
            profiler.start()
        import functions_framework  # the framework's import belongs to a cold start

        app = functions_framework.create_app("webhook", str(ROOT / "main.py"))  # type: ignore[no-untyped-call]
        client = app.test_client()
        count = 1 if args.mode == "cold" else args.events
        if args.mode == "warm":
            for _ in range(50):
                body, headers = events.next()
                client.post("/", data=body, headers=headers)
            profiler.start()
        started = time.perf_counter()
        for _ in range(count):
            body, headers = events.next()
            response = client.post("/", data=body, headers=headers)
            if response.status_code != 202:
                print(f"unexpected {response.status_code}: {response.text}", file=sys.stderr)
                return 1
        profiler.stop()
        elapsed = time.perf_counter() - started
    print(f"{count} event(s), {elapsed * 1000 / count:.3f} ms per event (profiled)")
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        args.html.write_text(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
