"""``./dev.sh serve``: the whole local stack, up until Ctrl-C.

The emulator (IAM + TaurusDB API, and SMN's signing certificate), the function's two entry
points under real functions-framework servers, and a callback receiver that prints every
callback as it arrives, after checking its signature. Fixed ports on 127.0.0.1 (options change
them). Prints the ``export`` lines that ``tools.invoke`` needs and writes them to
``.serve.env`` (ignored by git and docker), so another shell can run::

    . ./.serve.env && ./dev.sh invoke events/samples/*.json

Settings come from this environment over ``.env``; the cloud's (``OS_*``) always point at the
emulator, and secrets that are not set are made up fresh for this run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import json
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from emulator import Emulator
from emulator.config import DEFAULT_INSTANCE_ID, EmulatorConfig
from emulator.receiver import CallbackReceiver, ReceivedCallback
from tools import localenv
from tools.serve import function_server

__all__ = ["SAMPLE_TOPIC", "STAGING_INSTANCE", "main", "stack_env"]

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = ROOT / ".serve.env"
#: The second instance the samples name (FunctionGraph Kafka, INSTANCE_MAP "staging").
STAGING_INSTANCE = "5f2d9a4c8e7b4b1da3c60f9e2b7d1a84in07"
#: The SMN topic of the SMN samples.
SAMPLE_TOPIC = "urn:smn:eu-de:0a1b2c3d4e5f60718293a4b5c6d7e8f9:predeploy-backup"
_CLOUD = ("OS_ACCESS_KEY", "OS_SECRET_KEY", "OS_SECURITY_TOKEN", "OS_PROJECT_NAME")
_CLOUD_FILES = ("OS_PASSWORD_FILE", "OS_SECRET_KEY_FILE", "OS_SECURITY_TOKEN_FILE")


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def stack_env(environ: Mapping[str, str], emulator: Emulator, receiver_url: str) -> dict[str, str]:
    """The function's settings for the local stack: ``environ`` with the cloud swapped out."""
    config = emulator.config
    env = {k: v for k, v in environ.items() if k not in _CLOUD + _CLOUD_FILES}
    env.update(config.function_env(emulator.url), SMN_ENDPOINT=emulator.url)
    env.pop("OS_DOMAIN_NAME", None)
    defaults = {
        "WEBHOOK_SECRET": _whsec(),
        "CALLBACK_SECRET": _whsec(),
        "GITHUB_WEBHOOK_SECRET": secrets.token_hex(32),
        "GITLAB_WEBHOOK_TOKEN": secrets.token_hex(16),
        "SMN_TOPIC_URNS": SAMPLE_TOPIC,
        "INSTANCE_MAP": json.dumps(
            {"production": DEFAULT_INSTANCE_ID, "staging": STAGING_INSTANCE}
        ),
        "CALLBACK_URL": receiver_url,
        "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        # the samples carry fixed send times: serve them whatever their age (set it to 7 to
        # see an old delivery refused)
        "IDEMPOTENCY_WINDOW_DAYS": "3650",
    }
    for name, value in defaults.items():
        if not env.get(name) and not env.get(f"{name}_FILE"):
            env[name] = value
    return env


_EXPORTED = ("WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET", "GITLAB_WEBHOOK_TOKEN", "SMN_ENDPOINT")


def exports(env: Mapping[str, str], environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """What ``tools.invoke`` in another shell needs: made-up values, never the user's own.

    A secret of the user's (shell or ``.env``) is not printed; ``tools.invoke`` reads ``.env``
    itself. Returns the exports and the names left out.
    """
    shown = {n: env[n] for n in _EXPORTED if env.get(n) and env.get(n) != environ.get(n)}
    kept = [n for n in _EXPORTED if n not in shown and env.get(n)]
    return shown, kept


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _function(
    env: Mapping[str, str], target: str, port: int
) -> contextlib.AbstractContextManager[str]:
    """``functions-framework --target=...`` on ``port``; its log lines go to this terminal."""
    return function_server(
        env, target=target, port=port, launcher="functions-framework", log=sys.stderr
    )


def _show(callback: ReceivedCallback) -> None:
    payload = callback.payload if isinstance(callback.payload, dict) else {}
    verdict = "signature verified" if callback.verified else "signature NOT verified"
    backup = payload.get("backup")
    backup = backup if isinstance(backup, dict) else {}
    print(
        f"callback {payload.get('type')}: {verdict}; job {payload.get('job_id')}, "
        f"backup {backup.get('name')} of {payload.get('instance_id')}, "
        f"trigger {payload.get('trigger_id')}",
        flush=True,
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./dev.sh serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator-port", type=int, default=8090)
    parser.add_argument("--webhook-port", type=int, default=8080)
    parser.add_argument("--event-port", type=int, default=8081)
    parser.add_argument("--receiver-port", type=int, default=8082)
    parser.add_argument(
        "--backup-seconds", type=float, default=2.0, help="how long a backup builds"
    )
    parser.add_argument(
        "--exports", type=Path, default=EXPORTS, help="where to write the export lines"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    ports = {
        "--emulator-port": args.emulator_port,
        "--webhook-port": args.webhook_port,
        "--event-port": args.event_port,
        "--receiver-port": args.receiver_port,
    }
    busy = [f"{port} ({option})" for option, port in ports.items() if not _port_free(port)]
    if busy:
        print(
            f"serve: port(s) in use on 127.0.0.1: {', '.join(busy)}; another ./dev.sh serve? "
            "Stop it, or choose other ports with the options named.",
            file=sys.stderr,
        )
        return 1
    try:
        environ = localenv.load()
    except (OSError, ValueError) as exc:
        print(f"serve: .env: {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    config = EmulatorConfig(port=args.emulator_port, backup_seconds=args.backup_seconds)
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(Emulator(config))
        emulator.put_instance(STAGING_INSTANCE, name="taurusdb-staging")
        receiver_url = f"http://127.0.0.1:{args.receiver_port}/hooks/backup"
        env = stack_env(environ, emulator, receiver_url)
        receiver = CallbackReceiver(
            env.get("CALLBACK_SECRET"), port=args.receiver_port, on_receive=_show
        )
        stack.enter_context(receiver)
        try:
            webhook = stack.enter_context(_function(env, "webhook", args.webhook_port))
            event = stack.enter_context(_function(env, "event", args.event_port))
        except RuntimeError as exc:
            print(f"serve: {exc}", file=sys.stderr)
            return 1
        shown, kept = exports(env, environ)
        shown |= {
            "INVOKE_WEBHOOK_URL": webhook,
            "INVOKE_EVENT_URL": event,
            "INVOKE_CALLBACK_URL": receiver_url,
        }
        lines = [f"export {name}='{value}'" for name, value in shown.items()]
        if kept:
            lines.append(f"# yours, from the shell or .env (not shown): {', '.join(kept)}")
        args.exports.touch(mode=0o600)
        args.exports.write_text("\n".join(lines) + "\n", encoding="utf-8")
        stack.callback(args.exports.unlink, missing_ok=True)
        print(
            f"emulator (IAM, TaurusDB, SMN)  {emulator.url}   "
            f"instances: {emulator.url}/_emulator/instances\n"
            f"webhook entry point            {webhook}\n"
            f"event entry point              {event}\n"
            f"callback receiver              {receiver_url}\n\n"
            f"For tools.invoke in another shell: . {args.exports}  (or paste these)\n"
            + "\n".join(lines)
            + "\n\nThen e.g.: ./dev.sh invoke events/samples/*.json    Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
        print("serve: stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
