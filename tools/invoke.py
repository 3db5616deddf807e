"""Send a sample event to the function, signed as a real sender signs it (``sam local invoke -e``).

    python -m tools.invoke events/samples/generic-pre-deploy.json
    python -m tools.invoke events/samples/generic-pre-deploy.json --url http://127.0.0.1:8080/
    python -m tools.invoke SAMPLE --target event --header ce-type:dev.predeploy.pre-deploy

The sample's bytes are sent exactly as they are in the file. Headers, later ones winning:
``Content-Type: application/json``; the sample's sibling ``<name>.headers.json`` if there is
one; Standard Webhooks signature headers when ``WEBHOOK_SECRET`` is set, else
``Authorization: Bearer`` when ``WEBHOOK_TOKEN`` is set; then each ``--header NAME:VALUE``
(``--header NAME:`` removes one). Without ``--url`` the request goes straight through the
app (``functions_framework.create_app``), which reads its settings from this environment.
Prints the status and the response body; exits 0 for a 2xx answer, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from functions_framework import create_app
from standardwebhooks import Webhook

__all__ = ["Answer", "build_request", "main", "send"]

_SIGNATURE_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def build_request(
    sample: Path,
    environ: Mapping[str, str],
    overrides: Sequence[str] = (),
    message_id: str | None = None,
    now: datetime | None = None,
) -> tuple[bytes, dict[str, str], list[str]]:
    """The body, the headers and any warnings for sending ``sample``."""
    body = sample.read_bytes()
    headers: dict[str, str] = {"Content-Type": "application/json"}
    warnings: list[str] = []
    sibling = sample.with_name(sample.name.removesuffix(".json") + ".headers.json")
    if sibling.is_file():
        extra = json.loads(sibling.read_text(encoding="utf-8"))
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise ValueError(f"{sibling.name} must be a JSON object of header names to strings")
        _merge(headers, extra)
    # A sample's Standard Webhooks headers show the shape only: their signature is stale.
    for name in [n for n in headers if n.lower() in _SIGNATURE_HEADERS]:
        del headers[name]
    secret = environ.get("WEBHOOK_SECRET")
    token = environ.get("WEBHOOK_TOKEN")
    if secret:
        msg_id = message_id or f"msg_{uuid.uuid4().hex}"
        when = now or datetime.now(tz=UTC)
        _merge(
            headers,
            {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(when.timestamp())),
                "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode("utf-8")),
            },
        )
    elif token:
        _merge(headers, {"Authorization": f"Bearer {token}"})
    else:
        warnings.append(
            "neither WEBHOOK_SECRET nor WEBHOOK_TOKEN is set: the event goes unsigned "
            "(the function refuses it unless the sample's headers authenticate it)"
        )
    for override in overrides:
        name, separator, value = override.partition(":")
        if not separator or not name.strip():
            raise ValueError(f"--header {override!r}: expected NAME:VALUE")
        _merge(headers, {name.strip(): value.strip()})
    return body, {k: v for k, v in headers.items() if v != ""}, warnings


def _merge(headers: dict[str, str], extra: Mapping[str, str]) -> None:
    """Header names are case-insensitive: a later value replaces an earlier one of any case."""
    for name, value in extra.items():
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value


def send(
    body: bytes,
    headers: Mapping[str, str],
    url: str | None = None,
    target: str = "webhook",
    path: str = "/",
    timeout: float = 30.0,
) -> Answer:
    """POST to a running function at ``url``, or through the app built in this process."""
    if url is not None:
        response = httpx.post(url, content=body, headers=dict(headers), timeout=timeout)
        return Answer(response.status_code, response.content)
    app = create_app(target=target, source=str(ROOT / "main.py"))  # type: ignore[no-untyped-call]
    result = app.test_client().post(path, data=body, headers=dict(headers))
    return Answer(result.status_code, result.get_data())


def _render(body: bytes) -> str:
    try:
        document: Any = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")
    return json.dumps(document, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.invoke", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sample", type=Path, help="an event, e.g. events/samples/*.json")
    parser.add_argument("--url", help="a running function; default: through the app in-process")
    parser.add_argument("--target", default="webhook", help="entry point (in-process only)")
    parser.add_argument("--path", default="/", help="request path (in-process only)")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="add or replace a header; NAME: removes it (repeatable)",
    )
    parser.add_argument("--id", dest="message_id", help="webhook-id (default: a fresh one)")
    args = parser.parse_args(argv)
    try:
        body, headers, warnings = build_request(
            args.sample, os.environ, args.header, args.message_id
        )
    except (OSError, ValueError) as exc:
        print(f"invoke: {exc}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"invoke: {warning}", file=sys.stderr)
    try:
        answer = send(body, headers, url=args.url, target=args.target, path=args.path)
    except httpx.TransportError as exc:
        print(f"invoke: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2
    print(f"HTTP {answer.status}")
    print(_render(answer.body))
    return 0 if 200 <= answer.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
