"""``predeploy-gate``: back up before the deploy, and (with ``--wait``) block until it is done.

Exit codes (the pipeline's step fails on anything but 0):

0  the backup completed (``--wait``), or was started or found (without ``--wait``)
1  the backup failed
2  usage or configuration error (arguments, credentials, no trigger id)
3  the function refused the event or a status request (4xx: invalid, unauthorized, ...)
4  the backup was still running when ``--timeout`` ran out (``--wait``)
5  no usable answer from the function before ``--timeout`` (unreachable, or still
   busy/throttled: 503/504/429)

Human messages go to stderr; with ``--json`` the last line of stdout is the result. No secret
is ever printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Callable

from predeploy_gate import __version__, ci, signing
from predeploy_gate.transport import Answer, Deadline, GaveUp, Transport

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_RUNNING",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "main",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_RUNNING, EXIT_UNREACHABLE = range(6)
DEFAULT_TIMEOUT = 120.0
DEFAULT_WAIT_TIMEOUT = 3600.0
CI_LINE_SECONDS = 15.0
_WORST = {"FAILED": 3, "RUNNING": 2, "SUCCEEDED": 1}
_EPILOG = """\
credentials (environment): PREDEPLOY_WEBHOOK_SECRET (whsec_..., Standard Webhooks signing)
or PREDEPLOY_TOKEN (Authorization: Bearer).

exit codes: 0 completed (--wait) or started/found; 1 backup failed; 2 usage or configuration;
3 refused by the function (4xx); 4 still running when --timeout ran out (--wait);
5 no usable answer before --timeout (unreachable, 503/504/429).
"""


class UsageError(Exception):
    """Exit 2 with this message."""


@dataclass
class Result:
    instance_id: str | None
    trigger_id: str | None
    backup_id: str | None = None
    job_id: str | None = None
    status: str | None = None
    backup_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "backup_id": self.backup_id,
            "job_id": self.job_id,
            "instance_id": self.instance_id,
            "trigger_id": self.trigger_id,
        }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predeploy-gate",
        description="Back up the TaurusDB instance(s) through predeploy-backup before a deploy.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="the function's webhook URL")
    parser.add_argument(
        "--instance",
        required=True,
        action="append",
        metavar="ID",
        help="instance ID to back up (repeat for several)",
    )
    parser.add_argument("--id", help="trigger id (default: this CI run and job)")
    parser.add_argument("--name", help="backup name (default: derived by the function)")
    parser.add_argument("--description", help="backup description")
    parser.add_argument("--callback-url", help="where the function calls back (optional)")
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would happen, change nothing"
    )
    parser.add_argument("--wait", action="store_true", help="block until the backup has ended")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"give up after this long (default {DEFAULT_TIMEOUT:g}, "
        f"with --wait {DEFAULT_WAIT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (last line of stdout)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


class Console:
    """Messages for people on stderr (flushed at once: CI logs are not TTYs), progress lines."""

    def __init__(self, stream: IO[str], env: Mapping[str, str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._github = bool(env.get("GITHUB_ACTIONS"))
        self._last_line = -CI_LINE_SECONDS
        self._last_text = ""
        self._open = False

    def say(self, text: str) -> None:
        self._end_progress()
        self._write(f"predeploy-gate: {text}\n")

    def error(self, text: str) -> None:
        self._end_progress()
        prefix = "::error::" if self._github else "predeploy-gate: error: "
        self._write(f"{prefix}{text}\n")

    def progress(self, elapsed: float, text: str) -> None:
        """On a terminal one line rewritten in place; in a CI log a line every 15 s (and
        whenever the status changes)."""
        line = f"{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d} {text}"
        if self._tty:
            self._write(f"\r\x1b[K{line}")
            self._open = True
        elif text != self._last_text or elapsed - self._last_line >= CI_LINE_SECONDS:
            self._write(f"predeploy-gate: {line}\n")
            self._last_line = elapsed
        self._last_text = text

    def _end_progress(self) -> None:
        if self._open:
            self._write("\n")
            self._open = False

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class Credentials:
    """How requests are authenticated; never shown."""

    def __init__(self, env: Mapping[str, str]) -> None:
        secret = env.get("PREDEPLOY_WEBHOOK_SECRET", "").strip()
        token = env.get("PREDEPLOY_TOKEN", "").strip()
        self._key: bytes | None = None
        self._token: str | None = None
        if secret:
            try:
                self._key = signing.decode_secret(secret)
            except signing.SecretError as exc:
                raise UsageError(f"PREDEPLOY_WEBHOOK_SECRET {exc}") from None
        elif token:
            self._token = token
        else:
            raise UsageError("set PREDEPLOY_WEBHOOK_SECRET (whsec_...) or PREDEPLOY_TOKEN")

    @property
    def kind(self) -> str:
        return "Standard Webhooks signature" if self._key is not None else "bearer token"

    def headers(self, body: bytes, message_id: str) -> Callable[[], dict[str, str]]:
        """Headers per attempt: a signature is made anew (its timestamp must be fresh) under
        the same ``webhook-id``."""

        def make() -> dict[str, str]:
            headers = {"Accept": "application/json"}
            if body:
                headers["Content-Type"] = "application/json"
            if self._key is not None:
                headers.update(signing.sign_headers(self._key, body, message_id))
            else:
                headers["Authorization"] = f"Bearer {self._token}"
            return headers

        return make


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    environ = os.environ if env is None else env
    out = stdout or sys.stdout
    console = Console(stderr or sys.stderr, environ)
    args = build_parser().parse_args(argv)  # exits 2 on bad usage
    try:
        gate = Gate(args, environ, console, sleep)
    except UsageError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    code, results = gate.run()
    if args.json:
        document: Any = [r.as_json() for r in results]
        if len(document) == 1:
            document = document[0]
        out.write(json.dumps(document) + "\n")
        out.flush()
    return code


class Gate:
    """One run: send the event (retried), read the answer, poll until done when asked to."""

    def __init__(
        self,
        args: argparse.Namespace,
        env: Mapping[str, str],
        console: Console,
        sleep: Callable[[float], None],
    ) -> None:
        self.args = args
        self.console = console
        self.sleep = sleep
        self.url = _check_url(args.url)
        self.credentials = Credentials(env)
        if args.id is not None:
            if not args.id.strip():
                raise UsageError("--id must not be empty")
            self.trigger_id, origin = ci.fit(args.id.strip()), "from --id"
        else:
            found, origin = ci.trigger_id(env)
            if found is None:
                raise UsageError(f"no trigger id: {origin}")
            self.trigger_id = found
        self.origin = origin
        timeout = args.timeout
        if timeout is None:
            timeout = DEFAULT_WAIT_TIMEOUT if args.wait else DEFAULT_TIMEOUT
        if not timeout > 0:
            raise UsageError("--timeout must be a number of seconds > 0")
        self.deadline = Deadline(timeout)
        instances = list(dict.fromkeys(i.strip() for i in args.instance))
        if not all(instances):
            raise UsageError("--instance must not be empty")
        self.instances = instances
        self.transport = Transport(
            user_agent=f"predeploy-gate/{__version__}", sleep=sleep, on_retry=self._retrying
        )

    def _retrying(self, last: str, wait: float) -> None:
        self.console.say(f"{last}; retrying in {wait:.0f} s")

    def _blank(self) -> list[Result]:
        return [Result(instance_id=i, trigger_id=self.trigger_id) for i in self.instances]

    def _event(self) -> dict[str, Any]:
        """The pre-deploy event the arguments describe."""
        event: dict[str, Any] = {"event": "pre-deploy", "id": self.trigger_id}
        if len(self.instances) == 1:
            event["instance_id"] = self.instances[0]
        else:
            event["instance_ids"] = self.instances
        for key in ("name", "description", "callback_url"):
            value = getattr(self.args, key)
            if value is not None:
                event[key] = value
        if self.args.dry_run:
            event["dry_run"] = True
        return event

    def run(self) -> tuple[int, list[Result]]:
        body = json.dumps(self._event()).encode()
        self.console.say(
            f"trigger {self.trigger_id} ({self.origin}); instance(s) "
            f"{', '.join(self.instances)}; {self.credentials.kind}"
        )
        message_id = signing.new_message_id()
        try:
            answer = self.transport.send(
                "POST", self.url, body, self.credentials.headers(body, message_id), self.deadline
            )
        except GaveUp as exc:
            self.console.error(f"no usable answer from the function: {exc.last}")
            return EXIT_UNREACHABLE, self._blank()
        if 400 <= answer.status < 500:
            self.console.error("the function refused the event: " + _explain(answer))
            return EXIT_REFUSED, self._blank()
        if not 200 <= answer.status < 300:
            self.console.error("the function did not start the backup: " + _explain(answer))
            return EXIT_UNREACHABLE, self._blank()
        if self.args.dry_run:
            return self._dry_run(answer)
        results = _results(answer.body)
        if results is None:
            self.console.error("the answer names no backup: " + _explain(answer))
            return EXIT_UNREACHABLE, self._blank()
        for result in results:
            verb = "started" if answer.status == 202 else "found"
            self.console.say(
                f"backup {result.backup_id} {verb} on {result.instance_id}: {result.status}"
                + (f" (job {result.job_id})" if result.job_id else "")
            )
        if self.args.wait:
            stopped = self._wait(results)
            if stopped is not None:
                return stopped, results
        return self._verdict(results), results

    def _dry_run(self, answer: Answer) -> tuple[int, list[Result]]:
        body = answer.body if isinstance(answer.body, dict) else {}
        entries = body.get("results", [body])
        results = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            existing = entry.get("existing_backup") or {}
            result = Result(
                instance_id=entry.get("instance_id"),
                trigger_id=entry.get("trigger_id"),
                backup_id=existing.get("id") if isinstance(existing, dict) else None,
                backup_name=entry.get("backup_name"),
            )
            what = (
                f"would find backup {result.backup_id}"
                if result.backup_id
                else f"would create backup {result.backup_name!r}"
            )
            self.console.say(f"dry run on {result.instance_id}: {what}")
            results.append(result)
        return EXIT_OK, results or self._blank()

    def _status_url(self, backup_id: str) -> str:
        """Polled at the URL the user gave (credentials go nowhere else), not at whatever host
        an answer names."""
        base = self.url if self.url.endswith("/") else self.url + "/"
        return urllib.parse.urljoin(base, "backups/" + urllib.parse.quote(backup_id, safe=""))

    def _wait(self, results: list[Result]) -> int | None:
        """Poll until every backup has ended or the deadline; an exit code if it must stop."""
        interval = 1.0
        while True:
            pending = [r for r in results if r.status == "RUNNING"]
            if not pending:
                return None
            self.console.progress(self.deadline.elapsed(), _progress(results))
            remaining = self.deadline.remaining()
            if remaining <= 0:
                self.console.error(
                    f"still running after {self.deadline.elapsed():.0f} s (--timeout): "
                    + ", ".join(_names(pending))
                )
                return EXIT_RUNNING
            self.sleep(min(interval, remaining))
            interval = min(interval * 1.5, 10.0)
            for result in pending:
                if self.deadline.remaining() <= 0:
                    break
                code = self._poll(result)
                if code is not None:
                    return code

    def _poll(self, result: Result) -> int | None:
        if result.backup_id is None:  # results without a backup are never RUNNING
            return None
        url = self._status_url(result.backup_id)
        message_id = signing.new_message_id()
        try:
            answer = self.transport.send(
                "GET", url, None, self.credentials.headers(b"", message_id), self.deadline
            )
        except GaveUp as exc:
            self.console.say(f"status unavailable: {exc.last}")
            return None  # the loop ends at the deadline with exit 4 (last seen RUNNING)
        if 400 <= answer.status < 500:
            self.console.error("the function refused the status request: " + _explain(answer))
            return EXIT_REFUSED
        if answer.status == 200 and isinstance(answer.body, dict):
            status = answer.body.get("status")
            if status in _WORST:
                if status != result.status and status != "RUNNING":
                    self.console.say(f"backup {result.backup_id} on {result.instance_id}: {status}")
                result.status = status
        return None

    def _verdict(self, results: list[Result]) -> int:
        statuses = {r.status for r in results}
        if "FAILED" in statuses:
            self.console.error(
                "backup failed: "
                + ", ".join(
                    f"{r.backup_id} on {r.instance_id}" for r in results if r.status == "FAILED"
                )
            )
            return EXIT_FAILED
        if self.args.wait and "RUNNING" in statuses:
            return EXIT_RUNNING
        if self.args.wait:
            self.console.say(f"backup completed in {self.deadline.elapsed():.0f} s")
        return EXIT_OK


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--url must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise UsageError("--url must not carry credentials: use PREDEPLOY_TOKEN")
    return url.strip()


def _results(body: Any) -> list[Result] | None:
    """One result per backup, from a single answer or a ``results`` list; None if no backup."""
    if not isinstance(body, dict):
        return None
    entries = body["results"] if isinstance(body.get("results"), list) else [body]
    results = []
    for entry in entries:
        backup = entry.get("backup") if isinstance(entry, dict) else None
        if not isinstance(backup, dict) or not isinstance(backup.get("id"), str):
            return None
        status = entry.get("status")
        results.append(
            Result(
                instance_id=entry.get("instance_id"),
                trigger_id=entry.get("trigger_id"),
                backup_id=backup["id"],
                job_id=entry.get("job_id"),
                status=status if status in _WORST else "RUNNING",
            )
        )
    return results


def _names(results: Iterable[Result]) -> list[str]:
    return [f"{r.backup_id} on {r.instance_id}" for r in results]


def _progress(results: list[Result]) -> str:
    if len(results) == 1:
        only = results[0]
        return f"{only.status} backup {only.backup_id} on {only.instance_id}"
    done = sum(1 for r in results if r.status != "RUNNING")
    worst = max((r.status or "RUNNING" for r in results), key=lambda s: _WORST.get(s, 2))
    return f"{worst} {done}/{len(results)} backups ended"


def _explain(answer: Answer) -> str:
    """The function's error name, message and invalid fields; never headers or secrets."""
    text = f"HTTP {answer.status}"
    body = answer.body
    if isinstance(body, dict):
        if body.get("error"):
            text += f" {body['error']}"
        if body.get("message"):
            text += f": {body['message']}"
        fields = body.get("fields")
        if isinstance(fields, list) and fields:
            text += (
                " ("
                + "; ".join(
                    f"{f.get('field')}: {f.get('rule')}" for f in fields if isinstance(f, dict)
                )
                + ")"
            )
        results = body.get("results")
        if isinstance(results, list):
            for entry in results:
                if isinstance(entry, dict) and entry.get("error"):
                    text += (
                        f"; {entry.get('instance_id')}: {entry['error']} {entry.get('message', '')}"
                    )
    return text
