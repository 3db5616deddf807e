"""Send a sample event to the function, signed as its sender signs it (``sam local invoke -e``).

    python -m tools.invoke events/samples/generic-pre-deploy.json
    python -m tools.invoke events/samples/github-deployment.json --url http://127.0.0.1:8080/
    python -m tools.invoke --get /jobs/JOB_ID

The sender is told by the sample's headers (``<name>.headers.json``) and shape, and it decides
the entry point and the signature, as in docs/sources.md:

- generic event, CloudEvents sent to ``webhook``: Standard Webhooks with ``WEBHOOK_SECRET``,
  else ``Authorization: Bearer $WEBHOOK_TOKEN``;
- GitHub: ``X-Hub-Signature-256`` (and ``X-Hub-Signature``) with ``GITHUB_WEBHOOK_SECRET``;
- GitLab: ``X-Gitlab-Token: $GITLAB_WEBHOOK_TOKEN``, plus a Standard Webhooks signature when
  ``GITLAB_WEBHOOK_SIGNING_TOKEN`` is set;
- SMN: a fresh timestamp, signed by the emulator acting as SMN (``SMN_ENDPOINT``);
- CloudEvents, Pub/Sub push, FunctionGraph triggers: the ``event`` entry point, unsigned (the
  platform vouches for them); an APIG trigger's wrapped request is signed as its own sender.

Send times in the sample (``deployment.created_at``, ``time``, ``ce-time``, …) move to now: the
function refuses deliveries older than ``IDEMPOTENCY_WINDOW_DAYS``.
``--callback-url`` (default ``$INVOKE_CALLBACK_URL``) replaces every ``callback_url`` in the
sample, also inside JSON text and base64, before signing: local runs call back locally while
the samples keep their real shape. The request goes to ``--url``, else to
``$INVOKE_WEBHOOK_URL`` / ``$INVOKE_EVENT_URL`` (``./dev.sh serve`` prints them), else straight
through the app in this process. Settings come from this environment over ``.env``.

Prints ``HTTP <status>`` and the answer (JSON) on stdout, and what happened in a few words on
stderr. Exits 0 when the answer is 2xx and no record of it failed, 1 otherwise, 2 when the
request could not be made.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from functions_framework import create_app
from standardwebhooks import Webhook

from tools import localenv

__all__ = ["Answer", "Prepared", "build_request", "fresh", "main", "prepare", "send", "summary"]

ROOT = Path(__file__).resolve().parent.parent
_SIGNATURE_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})
_STALE = _SIGNATURE_HEADERS | {"x-hub-signature", "x-hub-signature-256", "x-gitlab-token"}
_ENTRY_URL = {"webhook": "INVOKE_WEBHOOK_URL", "event": "INVOKE_EVENT_URL"}
_WELL = {"started", "exists", "succeeded", "dry_run", "ignored", "pong"}


class InvokeError(Exception):
    """A mistake on this side (a setting, the sample, an option): the message says which."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


@dataclass
class Prepared:
    """A request ready to send: what it is, where it goes, and what the user should know."""

    sender: str
    entry: str
    path: str
    body: bytes
    headers: dict[str, str]
    warnings: list[str] = field(default_factory=list)


# --- preparing the request ----------------------------------------------------------------


def sender_of(headers: Mapping[str, str], body: bytes) -> str:
    """Which sender a sample comes from, by what that sender always puts in its request."""
    names = {name.lower(): value for name, value in headers.items()}
    content_type = names.get("content-type", "").lower()
    document = _json(body)
    if "x-github-event" in names:
        return "github"
    if "x-gitlab-event" in names:
        return "gitlab"
    if "x-smn-message-type" in names or (
        isinstance(document, dict) and "signing_cert_url" in document
    ):
        return "smn"
    if "x-cff-request-id" in names:
        apig = isinstance(document, dict) and "requestContext" in document
        return "functiongraph-apig" if apig else "functiongraph"
    if (
        isinstance(document, dict)
        and isinstance(document.get("message"), dict)
        and ("subscription" in document)
    ):
        return "pubsub"
    if any(name.startswith("ce-") for name in names) or "cloudevents" in content_type:
        return "cloudevents"
    return "generic"


_ENTRY = {
    "functiongraph": "event",
    "functiongraph-apig": "event",
    "pubsub": "event",
    "cloudevents": "event",
}


def prepare(
    sample: Path,
    environ: Mapping[str, str],
    overrides: Sequence[str] = (),
    *,
    message_id: str | None = None,
    now: datetime | None = None,
    callback_url: str | None = None,
    target: str | None = None,
) -> Prepared:
    """The sample's request, with its callbacks moved and signed as its sender signs it."""
    try:
        body = sample.read_bytes()
    except OSError as exc:
        raise InvokeError(f"cannot read {sample}: {exc.strerror}") from None
    headers: dict[str, str] = {"Content-Type": "application/json"}
    sibling = sample.with_name(sample.name.removesuffix(".json") + ".headers.json")
    if sibling.is_file():
        extra = _json(sibling.read_bytes())
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise InvokeError(f"{sibling.name} must be a JSON object of header names to strings")
        _merge(headers, extra)
    sender = sender_of(headers, body)
    entry = target or _ENTRY.get(sender, "webhook")
    if callback_url:
        body = _moved(body, callback_url)
    when = now or datetime.now(tz=UTC)
    document = _json(body)
    if document is not None and (refreshed := fresh(document, when)) != document:
        body = json.dumps(refreshed, indent=2).encode()
    headers = fresh(headers, when)
    warnings: list[str] = []
    if sender == "functiongraph-apig":
        body = _signed_apig(body, environ, message_id, when, warnings)
    elif entry == "webhook" or sender in ("github", "gitlab", "smn", "generic"):
        body = _sign(sender, body, headers, environ, message_id, when, warnings)
    for override in overrides:
        name, separator, value = override.partition(":")
        if not separator or not name.strip():
            raise InvokeError(f"--header {override!r}: expected NAME:VALUE")
        _merge(headers, {name.strip(): value.strip()})
    path = "/invoke" if sender.startswith("functiongraph") else "/"
    headers = {k: v for k, v in headers.items() if v != ""}
    return Prepared(sender, entry, path, body, headers, warnings)


def build_request(
    sample: Path,
    environ: Mapping[str, str],
    overrides: Sequence[str] = (),
    message_id: str | None = None,
    now: datetime | None = None,
) -> tuple[bytes, dict[str, str], list[str]]:
    """The body, the headers and any warnings for sending ``sample`` (see ``prepare``)."""
    try:
        prepared = prepare(sample, environ, overrides, message_id=message_id, now=now)
    except InvokeError as exc:
        raise ValueError(str(exc)) from None
    return prepared.body, prepared.headers, prepared.warnings


def _sign(
    sender: str,
    body: bytes,
    headers: dict[str, str],
    environ: Mapping[str, str],
    message_id: str | None,
    when: datetime,
    warnings: list[str],
) -> bytes:
    """Sign ``body`` in place of the sample's stale signature; returns the body to send."""
    for name in [n for n in headers if n.lower() in _STALE]:
        del headers[name]
    if sender == "github":
        github_secret = _first(environ.get("GITHUB_WEBHOOK_SECRET"))
        if not github_secret:
            warnings.append("GITHUB_WEBHOOK_SECRET is not set: the delivery goes unsigned")
            return body
        key = github_secret.encode()
        digest256 = hmac.new(key, body, hashlib.sha256).hexdigest()
        digest1 = hmac.new(key, body, "sha1").hexdigest()  # GitHub still sends both
        _merge(headers, {"X-Hub-Signature-256": f"sha256={digest256}"})
        _merge(headers, {"X-Hub-Signature": f"sha1={digest1}"})
        return body
    if sender == "gitlab":
        token = _first(environ.get("GITLAB_WEBHOOK_TOKEN"))
        signing = _first(environ.get("GITLAB_WEBHOOK_SIGNING_TOKEN"))
        if token:
            _merge(headers, {"X-Gitlab-Token": token})
        if signing:
            idempotency_key = next(
                (v for k, v in headers.items() if k.lower() == "idempotency-key"), None
            )
            _standard_webhooks(
                "GITLAB_WEBHOOK_SIGNING_TOKEN",
                signing,
                body,
                headers,
                idempotency_key,
                when,
                message_id,
            )
        if not token and not signing:
            warnings.append(
                "neither GITLAB_WEBHOOK_TOKEN nor GITLAB_WEBHOOK_SIGNING_TOKEN is set: "
                "the delivery goes without a token"
            )
        return body
    if sender == "smn":
        return _smn_signed(body, environ, when)
    secret = _first(environ.get("WEBHOOK_SECRET"))
    token = _first(environ.get("WEBHOOK_TOKEN"))
    if secret:
        _standard_webhooks("WEBHOOK_SECRET", secret, body, headers, None, when, message_id)
    elif token:
        _merge(headers, {"Authorization": f"Bearer {token}"})
    else:
        warnings.append(
            "neither WEBHOOK_SECRET nor WEBHOOK_TOKEN is set: the event goes unsigned "
            "(the function refuses it unless the sample's headers authenticate it)"
        )
    return body


def _standard_webhooks(
    setting: str,
    secret: str,
    body: bytes,
    headers: dict[str, str],
    default_id: str | None,
    when: datetime,
    message_id: str | None,
) -> None:
    text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise InvokeError(
            f"{setting} must be a Standard Webhooks secret: whsec_ followed by the base64 of "
            "at least 16 random bytes (e.g. 'whsec_' + output of: openssl rand -base64 32)"
        )
    msg_id = message_id or default_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(msg_id, when, body.decode("utf-8"))
    _merge(
        headers,
        {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": signature,
        },
    )


def _smn_signed(body: bytes, environ: Mapping[str, str], when: datetime) -> bytes:
    """SMN signs with a key only it holds: the emulator, acting as SMN, signs here."""
    endpoint = environ.get("SMN_ENDPOINT", "").rstrip("/")
    if not endpoint.startswith(("http://127.", "http://localhost")):
        raise InvokeError(
            "SMN samples are signed by the emulator acting as SMN: set SMN_ENDPOINT to the "
            "emulator's URL (./dev.sh serve and python -m emulator print it)"
        )
    message = _json(body)
    if not isinstance(message, dict):
        raise InvokeError("an SMN sample must be a JSON object")
    unsigned = {k: v for k, v in message.items() if k not in ("signature", "signing_cert_url")}
    unsigned["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        answer = httpx.post(f"{endpoint}/_emulator/smn/sign", json=unsigned, timeout=10)
    except httpx.TransportError as exc:
        raise InvokeError(f"cannot reach the emulator at SMN_ENDPOINT={endpoint}: {exc}") from None
    if answer.status_code != 200:
        raise InvokeError(f"the emulator did not sign the SMN message: {answer.text}")
    return json.dumps(answer.json(), indent=2).encode()


def _signed_apig(
    body: bytes,
    environ: Mapping[str, str],
    message_id: str | None,
    when: datetime,
    warnings: list[str],
) -> bytes:
    """APIG wraps the HTTP request: sign the wrapped request as its own sender would."""
    wrapper = _json(body)
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("headers"), dict):
        raise InvokeError("an APIG sample must be a JSON object with headers and body")
    inner = str(wrapper.get("body") or "")
    raw = base64.b64decode(inner) if wrapper.get("isBase64Encoded") else inner.encode()
    headers = {str(k): str(v) for k, v in wrapper["headers"].items()}
    sender = sender_of(headers, raw)
    raw = _sign(sender, raw, headers, environ, message_id, when, warnings)
    wrapper["headers"] = headers
    encoded = wrapper.get("isBase64Encoded")
    wrapper["body"] = base64.b64encode(raw).decode() if encoded else raw.decode()
    return json.dumps(wrapper, indent=2).encode()


_TIME_KEYS = frozenset(
    {
        "created_at",
        "updated_at",
        "status_changed_at",
        "time",
        "timestamp",
        "publishtime",
        "publish_time",
        "event_time",
        "ce-time",
    }
)
_TIME_LAYOUTS = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"), "%Y-%m-%dT%H:%M:%S.000Z"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "%Y-%m-%dT%H:%M:%SZ"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"), "%Y-%m-%dT%H:%M:%S+00:00"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"), "%Y-%m-%d %H:%M:%S +0000"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"), "%Y-%m-%d %H:%M:%S UTC"),
)


def fresh(value: Any, now: datetime | None = None) -> Any:
    """``value`` (a sample's body or headers) with every send time moved to now, in its format.

    The samples are dated, and the function refuses deliveries older than its idempotency
    window (``IDEMPOTENCY_WINDOW_DAYS``): a sample is sent as if made just now.
    """
    now = now or datetime.now(tz=UTC)
    if isinstance(value, list):
        return [fresh(item, now) for item in value]
    if not isinstance(value, dict):
        return value
    moved: dict[str, Any] = {}
    for key, item in value.items():
        if key.lower() in _TIME_KEYS and isinstance(item, int) and not isinstance(item, bool):
            moved[key] = int(now.timestamp())
        elif key.lower() in _TIME_KEYS and isinstance(item, str):
            layout = next((f for pattern, f in _TIME_LAYOUTS if pattern.fullmatch(item)), None)
            moved[key] = now.strftime(layout) if layout else item
        else:
            moved[key] = fresh(item, now)
    return moved


def _moved(body: bytes, url: str) -> bytes:
    """``body`` with every ``callback_url`` set to ``url`` (also in JSON text and base64)."""
    document = _json(body)
    if document is None:
        return body
    moved = _retarget(document, url)
    return body if moved == document else json.dumps(moved, indent=2).encode()


def _retarget(value: Any, url: str) -> Any:
    if isinstance(value, dict):
        return {
            k: url if k == "callback_url" and isinstance(v, str) else _retarget(v, url)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_retarget(v, url) for v in value]
    if not isinstance(value, str) or len(value) < 16:
        return value
    if value.lstrip().startswith(("{", "[")):
        inner = _json(value.encode())
        moved = _retarget(inner, url)
        return value if moved == inner else json.dumps(moved, separators=(",", ":"))
    try:
        decoded = _json(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return value
    if isinstance(decoded, dict | list):
        moved = _retarget(decoded, url)
        if moved != decoded:
            return base64.b64encode(json.dumps(moved, separators=(",", ":")).encode()).decode()
    return value


def _first(value: str | None) -> str | None:
    """The first of several values (rotation): the one a sender signs with."""
    parts = (value or "").replace(",", " ").split()
    return parts[0] if parts else None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _merge(headers: dict[str, str], extra: Mapping[str, str]) -> None:
    """Header names are case-insensitive: a later value replaces an earlier one of any case."""
    for name, value in extra.items():
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value


# --- sending and reading the answer -------------------------------------------------------


def send(
    body: bytes,
    headers: Mapping[str, str],
    url: str | None = None,
    target: str = "webhook",
    path: str = "/",
    timeout: float = 30.0,
    method: str = "POST",
) -> Answer:
    """Send to a running function at ``url``, or through the app built in this process."""
    if url is not None:
        response = httpx.request(method, url, content=body, headers=dict(headers), timeout=timeout)
        return Answer(response.status_code, response.content)
    app = create_app(target=target, source=str(ROOT / "main.py"))  # type: ignore[no-untyped-call]
    result = app.test_client().open(path, method=method, data=body, headers=dict(headers))
    return Answer(result.status_code, result.get_data())


def unwrap(answer: Answer) -> Answer:
    """APIG's answer shape (``statusCode``, ``body``) is the wrapped request's real answer."""
    document = _json(answer.body)
    if not isinstance(document, dict) or "statusCode" not in document:
        return answer
    inner = str(document.get("body") or "")
    raw = base64.b64decode(inner) if document.get("isBase64Encoded") else inner.encode()
    return Answer(int(document["statusCode"]), raw)


def summary(answer: Answer) -> tuple[bool, list[str]]:
    """Whether everything ended well, and a few readable lines about what happened."""
    document = _json(answer.body)
    good = 200 <= answer.status < 300
    if not isinstance(document, dict):
        return good, [f"HTTP {answer.status}, not JSON"]
    records = document.get("results")
    if not isinstance(records, list):
        records = [document]
    lines = []
    for record in records:
        line, ok = _describe(record)
        good = good and ok
        lines.append(line)
    return good, lines


def _describe(record: Any) -> tuple[str, bool]:
    if not isinstance(record, dict):
        return "a record that is no object", False
    where = f"record {record['record']}: " if "record" in record else ""
    backup = record.get("backup") if isinstance(record.get("backup"), dict) else None
    if record.get("error") or record.get("outcome") == "failed":
        fields = record.get("fields") or []
        named = "; ".join(
            f"{f.get('field')}: {f.get('rule')}" for f in fields if isinstance(f, dict)
        )
        text = f"{where}failed: {record.get('error')}: {record.get('message', '')}"
        return text + (f" ({named})" if named else ""), False
    if record.get("dry_run") or record.get("outcome") == "dry_run":
        return f"{where}dry run: would make {record.get('backup_name')}", True
    if backup is not None:
        made = "made now" if record.get("created") or record.get("job_id") else "already there"
        job = f", job {record['job_id']}" if record.get("job_id") else ""
        callbacks = record.get("callbacks") or record.get("callback") or {}
        sent = _callbacks(callbacks)
        text = (
            f"{where}backup {backup.get('name')} of {backup.get('instance_id')} {made}{job}{sent}"
        )
        return text, True
    note = str(record.get("note", ""))  # answers that start no backup (ignored, pong, ...)
    if note in _WELL:
        return f"{where}{note}: {record.get('message', '')}".rstrip(": "), True
    return f"{where}{json.dumps(record)[:200]}", 200 <= int(record.get("http_status", 200)) < 300


def _callbacks(value: Any) -> str:
    """`` (callback delivered)`` or `` (callback NOT delivered: …)`` from an answer's report."""
    reports = [value] if isinstance(value, dict) and "delivered" in value else []
    if isinstance(value, dict) and not reports:
        reports = [v for v in value.values() if isinstance(v, dict)]
    if not reports:
        return ""
    failed = [r for r in reports if not r.get("delivered")]
    if failed:
        return f" (callback NOT delivered: {failed[0].get('error') or failed[0].get('status')})"
    return " (callback delivered)"


def _url_for(args: argparse.Namespace, environ: Mapping[str, str], entry: str, path: str) -> str:
    if args.url:
        return str(args.url).rstrip("/") + path if entry == "webhook" and path != "/" else args.url
    base = environ.get(_ENTRY_URL[entry], "")
    return base.rstrip("/") + path if base else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.invoke",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Details: docs/emulator.md, section 'Local invoke'.",
    )
    parser.add_argument(
        "samples", type=Path, nargs="*", help="events, e.g. events/samples/*.json (headers skipped)"
    )
    parser.add_argument("--url", help="the function; default: $INVOKE_WEBHOOK_URL/_EVENT_URL")
    parser.add_argument("--target", choices=("webhook", "event"), help="entry point to use")
    parser.add_argument("--path", help="request path (default: / or /invoke)")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="add or replace a header; NAME: removes it (repeatable)",
    )
    parser.add_argument("--id", dest="message_id", help="webhook-id (default: a fresh one)")
    parser.add_argument(
        "--callback-url", help="send the callbacks here (default: $INVOKE_CALLBACK_URL)"
    )
    parser.add_argument("--get", metavar="PATH", help="GET the status endpoint, e.g. /jobs/ID")
    args = parser.parse_args(argv)
    try:
        environ = localenv.load()
    except (OSError, ValueError) as exc:
        print(f"invoke: .env: {exc}", file=sys.stderr)
        return 2
    for name, value in environ.items():  # the function run in this process reads .env too
        os.environ.setdefault(name, value)
    samples = [p for p in args.samples if not p.name.endswith(".headers.json")]
    if not samples and not args.get:
        parser.error("give one or more samples, or --get PATH")
    codes = [_invoke(args, environ, None, len(samples) > 1)] if args.get else []
    codes += [_invoke(args, environ, sample, len(samples) > 1) for sample in samples]
    if len(codes) > 1:
        print(f"invoke: {codes.count(0)} of {len(codes)} ended well", file=sys.stderr)
    return max(codes)


def _invoke(
    args: argparse.Namespace, environ: Mapping[str, str], sample: Path | None, several: bool
) -> int:
    """One request: 0 when it ended well, 1 when not, 2 when it could not be made."""
    if several:
        print(f"== {sample}", flush=True)
    try:
        if sample is None:
            prepared = _status_request(args.get, environ, args.header)
        else:
            prepared = prepare(
                sample,
                environ,
                args.header,
                message_id=args.message_id,
                callback_url=args.callback_url or environ.get("INVOKE_CALLBACK_URL"),
                target=args.target,
            )
    except InvokeError as exc:
        print(f"invoke: {exc}", file=sys.stderr)
        return 2
    for warning in prepared.warnings:
        print(f"invoke: {warning}", file=sys.stderr)
    path = args.path or prepared.path
    url = _url_for(args, environ, prepared.entry, path)
    try:
        answer = send(
            prepared.body,
            prepared.headers,
            url=url or None,
            target=prepared.entry,
            path=path,
            method="GET" if sample is None else "POST",
        )
    except httpx.TransportError as exc:
        print(f"invoke: cannot reach {url} (is ./dev.sh serve running?): {exc}", file=sys.stderr)
        return 2
    print(f"HTTP {answer.status}")
    print(_render(answer.body), flush=True)
    where = url or f"the {prepared.entry} entry point in this process"
    print(f"invoke: {prepared.sender} -> {where}", file=sys.stderr)
    good, lines = summary(unwrap(answer))
    for line in lines:
        print(f"invoke: {line}", file=sys.stderr, flush=True)
    return 0 if good else 1


def _status_request(path: str, environ: Mapping[str, str], overrides: Sequence[str]) -> Prepared:
    """``GET /backups/{id}`` or ``/jobs/{id}``: the empty body signed as an event is."""
    headers: dict[str, str] = {}
    warnings: list[str] = []
    _sign("generic", b"", headers, environ, None, datetime.now(tz=UTC), warnings)
    for override in overrides:
        name, _, value = override.partition(":")
        _merge(headers, {name.strip(): value.strip()})
    return Prepared("status", "webhook", "/" + path.lstrip("/"), b"", headers, warnings)


def _render(body: bytes) -> str:
    document = _json(body)
    if document is None:
        return body.decode("utf-8", errors="replace")
    return json.dumps(document, indent=2)


if __name__ == "__main__":
    sys.exit(main())
