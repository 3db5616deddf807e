"""``python -m emulator``: run the emulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from types import FrameType

from emulator.config import EmulatorConfig
from emulator.control import Emulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument(
        "--backup-seconds", type=float, default=2.0, help="BUILDING -> COMPLETED delay"
    )
    parser.add_argument("--token-ttl-seconds", type=float, default=86400.0)
    parser.add_argument("--job-visible-after-seconds", type=float, default=0.0)
    parser.add_argument("--access-log", action="store_true", help="log each request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        backup_seconds=args.backup_seconds,
        token_ttl_seconds=args.token_ttl_seconds,
        job_visible_after_seconds=args.job_visible_after_seconds,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        emulator = Emulator(config, access_log=args.access_log).start()
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {_why(exc)}", file=sys.stderr)
        return 1
    try:
        print(f"emulator listening on {emulator.url}", flush=True)
        settings = {**config.function_env(emulator.url), "SMN_ENDPOINT": emulator.url}
        lines = [f"export {key}={value}" for key, value in settings.items()]
        lines.append(f"# seeded ACTIVE instances, e.g. {config.instances[0]}; all of them:")
        lines.append(f"#   curl {emulator.url}/_emulator/instances  (admin: docs/emulator.md)")
        print("\n".join(lines), file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            "the port is in use (another emulator, or ./dev.sh serve?); "
            "pick another with --port, or --port 0 for a free one"
        )
    if exc.errno == errno.EACCES:
        return "not allowed (ports below 1024 need privileges); pick another with --port"
    return exc.strerror or str(exc)


if __name__ == "__main__":
    sys.exit(main())
