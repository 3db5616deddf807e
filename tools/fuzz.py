"""Fuzz the function's HTTP entry points for a given time against an in-process emulator.

    python -m tools.fuzz --seconds 600 [--seed N] [--report findings.json]

Each case is one request: random bytes, mutated samples (``events/samples/*.json`` and built-in
shapes of every sender), headers that mimic every sender (GitHub, GitLab, CloudEvents, Pub/Sub,
SMN, FunctionGraph, Standard Webhooks), oversized and deeply nested bodies, bad encodings, values
the parser or the models can choke on (huge integers, NaN/Infinity, overflowing floats, lone
surrogates, alone or as one record of a batch); some
are correctly signed (so the fuzzer also reaches the event rules and the handler), some signed
and then tampered with. After each case the oracle checks:

- no 5xx, and every error answer is a JSON object with an ``error``;
- no call upstream (emulator) or outbound (callback receiver) for a request that was not
  authentic, nor for an authentic one the function refused itself (400/401/403/413/415);
- no configured secret and no generated header value in an error answer;
- no configured secret in any log line.

It prints the number of requests and every finding (with a reproducible description), and
exits 1 when there was any finding.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import random
import secrets
import string
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from flask.testing import FlaskClient
from functions_framework import create_app
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "events" / "samples"
SAMPLE_CALLBACK = "https://ci.example.com/hooks/backup"
ENTRY_POINTS = ("webhook", "event")
LOCAL_REFUSALS = frozenset(
    {
        "invalid_event",
        "unauthorized",
        "forbidden",
        "payload_too_large",
        "unsupported_media_type",
        "method_not_allowed",
    }
)
INSTANCE = "07033b125fd94a8a96896f8bcfee6ddain07"
FRAMEWORK_PATHS = frozenset({"/robots.txt", "/favicon.ico"})

__all__ = ["Case", "Finding", "Fuzzer", "Secrets", "check", "entry_points", "main"]


@dataclass(frozen=True)
class Secrets:
    """Fresh secrets for one fuzzing run (never the project's test secrets)."""

    webhook: str = field(default_factory=lambda: _whsec())
    webhook_token: str = field(default_factory=lambda: "tok-" + secrets.token_hex(16))
    callback: str = field(default_factory=lambda: _whsec())
    github: str = field(default_factory=lambda: "gh-" + secrets.token_hex(16))
    gitlab: str = field(default_factory=lambda: "gl-" + secrets.token_hex(16))

    def all(self) -> list[str]:
        values = [self.webhook, self.webhook_token, self.callback, self.github, self.gitlab]
        return [*values, self.webhook.removeprefix("whsec_"), self.callback.removeprefix("whsec_")]


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def entry_points() -> list[str]:
    """The HTTP entry points ``main.py`` defines now (``event`` arrives with later sources)."""
    text = (ROOT / "main.py").read_text()
    return [name for name in ENTRY_POINTS if f"\ndef {name}(" in text]


@dataclass
class Case:
    """One request, and whether it carries valid credentials for the generic source."""

    kind: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    authentic: bool = False
    markers: list[str] = field(default_factory=list)

    def describe(self) -> str:
        shown = self.body[:300].decode("utf-8", "replace")
        return f"{self.kind}: {self.method} {self.path} headers={self.headers} body={shown!r}"


@dataclass(frozen=True)
class Finding:
    problem: str
    case: str


def check(
    case: Case,
    status: int,
    text: str,
    upstream_calls: int,
    outbound_calls: int,
    secret_values: list[str],
    platform_verified: bool = False,
) -> list[str]:
    """The oracle: what is wrong with this answer to this case (empty when nothing).

    ``platform_verified``: the entry point's platform authenticates senders (``event``), so
    a well-formed delivery is acted on without credentials of ours.
    """
    problems = []
    if status >= 500:
        problems.append(f"answered {status}")
    error = None
    # functions-framework's own 404 for /robots.txt and /favicon.ico is HTML; HEAD has no body.
    own_answer = case.method != "HEAD" and case.path.split("?")[0] not in FRAMEWORK_PATHS
    if status >= 400 and own_answer:
        try:
            document = json.loads(text)
            error = document.get("error") if isinstance(document, dict) else None
        except ValueError:
            document = None
        # a batch answers with every record's outcome; each failed one names its error
        results = document.get("results") if isinstance(document, dict) else None
        if isinstance(results, list) and results:
            failed = [
                r
                for r in results
                if isinstance(r, dict) and "failed" in (r.get("outcome"), r.get("status"))
            ]
            if not failed or not all(isinstance(r.get("error"), str) for r in failed):
                problems.append(f"batch answer {status} has no failed record naming its error")
        elif not isinstance(error, str):
            problems.append(f"error answer {status} is not a JSON object with an 'error'")
    if status >= 400:
        for marker in case.markers:
            if marker in text:
                problems.append("an error answer echoes a request header value")
    refused_here = error in LOCAL_REFUSALS
    trusted = case.authentic or platform_verified
    if upstream_calls and (not trusted or refused_here):
        problems.append(f"{upstream_calls} upstream call(s) for a refused or unauthenticated event")
    if outbound_calls and (not trusted or refused_here):
        problems.append(f"{outbound_calls} outbound call(s) for a refused or unauthenticated event")
    for secret in secret_values:
        if secret in text:
            problems.append("the answer contains a configured secret")
    return problems


class _LogScanner(io.TextIOBase):
    """Stands in for stderr: keeps no log, only notes lines that carry a secret."""

    def __init__(self, secret_values: list[str]) -> None:
        self._secrets = secret_values
        self.lines = 0
        self.leaks = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        if any(secret in text for secret in self._secrets):
            self.leaks += 1
        return len(text)


# --------------------------------------------------------------------------------------
# Generating cases

_SEEDS: list[Any] = [
    {
        "event": "pre-deploy",
        "id": "deploy-1",
        "instance_id": INSTANCE,
        "name": "backup-1",
        "description": "Manual backup",
        "callback_url": "https://ci.example.com/hooks/backup",
    },
    {"action": "created", "deployment": {"id": 1, "environment": "production"}, "repository": {}},
    {"object_kind": "deployment", "status": "running", "environment": "production"},
    {
        "specversion": "1.0",
        "type": "com.example.pre-deploy",
        "source": "/ci",
        "id": "1",
        "data": {"event": "pre-deploy", "instance_id": INSTANCE},
    },
    {
        "message": {
            "data": base64.b64encode(b'{"event":"pre-deploy"}').decode(),
            "messageId": "1",
            "attributes": {},
        },
        "subscription": "projects/p/subscriptions/s",
    },
    {
        "type": "SubscriptionConfirmation",
        "signature_version": "v1",
        "message_id": "1",
        "topic_urn": "urn:smn:eu-de:p:t",
        "subscribe_url": "http://169.254.169.254/latest",
        "signing_cert_url": "https://169.254.169.254/cert.pem",
        "signature": "AAAA",
        "message": "{}",
        "timestamp": "2026-01-01T00:00:00Z",
    },
    {"record": [{"event_version": "1.0", "smn": {"message": "{}"}}], "Records": []},
]

_SENDERS: dict[str, list[tuple[str, list[str]]]] = {
    "github": [
        ("X-GitHub-Event", ["deployment", "deployment_status", "push", "ping", "*"]),
        ("X-GitHub-Delivery", ["72d3162e-cc78-11e3-81ab-4c9367dc0958"]),
        ("X-Hub-Signature-256", ["sha256=" + "0" * 64, "sha256=", "md5=x"]),
        ("User-Agent", ["GitHub-Hookshot/044aadd"]),
    ],
    "gitlab": [
        ("X-Gitlab-Event", ["Deployment Hook", "Pipeline Hook", "System Hook"]),
        ("X-Gitlab-Token", ["", "token"]),
        ("X-Gitlab-Instance", ["https://gitlab.example.com"]),
        ("Idempotency-Key", ["f2a4f2a4"]),
        ("X-Gitlab-Webhook-UUID", ["ab12"]),
    ],
    "cloudevents": [
        ("ce-specversion", ["1.0", "0.3", "9"]),
        ("ce-type", ["com.example.pre-deploy", ""]),
        ("ce-source", ["/ci", "//x"]),
        ("ce-id", ["1", ""]),
        ("ce-time", ["2026-01-01T00:00:00Z", "yesterday"]),
        ("Content-Type", ["application/cloudevents+json", "application/cloudevents-batch+json"]),
    ],
    "pubsub": [
        ("Authorization", ["Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig"]),
        (
            "User-Agent",
            ["APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"],
        ),
    ],
    "smn": [
        ("X-SMN-MESSAGE-TYPE", ["Notification", "SubscriptionConfirmation", "Unsubscribe"]),
        ("X-SMN-MESSAGEID", ["1"]),
        ("X-SMN-TOPIC-URN", ["urn:smn:eu-de:p:t"]),
        ("X-SMN-SUBSCRIPTION-URN", ["urn:smn:eu-de:p:t:s"]),
    ],
    "functiongraph": [
        ("X-CFF-Request-Id", ["1"]),
        ("X-Cff-Func-Name", ["predeploy"]),
        ("X-Trigger-Type", ["SMN", "APIG", "TIMER", "KAFKA"]),
    ],
    "generic": [
        ("webhook-id", ["msg_1", ""]),
        ("webhook-timestamp", ["0", "99999999999", "-1", "1e9"]),
        ("webhook-signature", ["v1,AAAA", "v1a,x", "v1,", "", "v1," + "A" * 44]),
        ("Authorization", ["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "bearer tok-"]),
    ],
}

_CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/cloudevents+json",
    "text/plain",
    "",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
]


class Generator:
    """Random cases from one ``random.Random``: a seed reproduces a run."""

    def __init__(
        self, rng: random.Random, secret: Secrets, callback_url: str, body_limit: int
    ) -> None:
        self.rng = rng
        self.secrets = secret
        self.callback_url = callback_url
        self.body_limit = body_limit
        # The generic seed calls back to the local receiver: no case reaches out to the internet.
        self.seeds = [{**_SEEDS[0], "callback_url": callback_url}, *_SEEDS[1:]]
        for path in sorted(SAMPLES.glob("*.json")):
            # the samples' callback URL (on the internet) becomes the local receiver's
            text = path.read_text().replace(SAMPLE_CALLBACK, callback_url)
            with contextlib.suppress(ValueError):
                self.seeds.append(json.loads(text))

    def case(self) -> Case:
        kinds = [
            (self.random_bytes, 2),
            (self.mutated_unsigned, 4),
            (self.sender_mimic, 4),
            (self.signed_random, 4),
            (self.signed_mutated, 6),
            (self.signed_then_tampered, 3),
            (self.bearer, 2),
            (self.extremes, 1),
            (self.hostile_json, 4),
        ]
        make = self.rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
        return make()

    # -- pieces --------------------------------------------------------------------------

    def marker(self) -> str:
        return f"hv{self.rng.getrandbits(64):016x}"

    def text(self, limit: int = 40) -> str:
        alphabet = string.printable + "äöü€\u202e\u0000\ud7ff漢"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, limit)))

    def value(self, depth: int = 0) -> Any:
        choice = self.rng.randint(0, 9 if depth < 4 else 5)
        if choice == 0:
            return None
        if choice == 1:
            return self.rng.choice([True, False])
        if choice == 2:
            return self.rng.choice([0, -1, 2**63, 1e308, 0.5, -(2**53)])
        if choice == 3:
            return self.text()
        if choice == 4:
            return self.rng.choice(
                [
                    INSTANCE,
                    f"{self.rng.getrandbits(128):032x}in07",
                    "pre-deploy",
                    self.callback_url,
                    "https://169.254.169.254/latest/meta-data/",
                    "http://[::1]:80/",
                    "https://user:pw@example.invalid/",
                    "a" * 300,
                ]
            )
        if choice == 5:
            return self.text(8)
        if choice in (6, 7):
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.text(10): self.value(depth + 1) for _ in range(self.rng.randint(0, 5))}

    def mutate(self, document: Any) -> Any:
        document = json.loads(json.dumps(document))
        for _ in range(self.rng.randint(1, 4)):
            if not isinstance(document, dict) or not document or self.rng.random() < 0.1:
                return self.value()
            key = self.rng.choice(list(document))
            action = self.rng.randint(0, 3)
            if action == 0:
                del document[key]
            elif action == 1:
                document[key] = self.value()
            elif action == 2:
                document[self.text(12)] = self.value()
            else:
                document[key] = self.mutate(document[key]) if document[key] else self.value()
        return document

    def flip_bytes(self, body: bytes) -> bytes:
        data = bytearray(body)
        for _ in range(self.rng.randint(1, 8)):
            if not data:
                break
            data[self.rng.randrange(len(data))] = self.rng.randrange(256)
        return bytes(data)

    def headers(self, senders: int = 0) -> tuple[dict[str, str], list[str]]:
        headers: dict[str, str] = {}
        markers: list[str] = []
        for name in self.rng.sample(list(_SENDERS), k=senders):
            for header, values in _SENDERS[name]:
                if self.rng.random() < 0.8:
                    headers[header] = self.rng.choice(values)
        if self.rng.random() < 0.8:
            headers["Content-Type"] = self.rng.choice(_CONTENT_TYPES)
        for _ in range(self.rng.randint(0, 3)):
            marker = self.marker()
            markers.append(marker)
            name = self.rng.choice(
                [
                    "X-Custom",
                    "X-Request-Id",
                    "Function-Execution-Id",
                    "X-Gitlab-Token",
                    "X-Hub-Signature-256",
                    "Authorization",
                    "Cookie",
                    "Referer",
                    "ce-id",
                    "X-SMN-MESSAGEID",
                    "webhook-signature",
                    "X-Forwarded-For",
                    "Forwarded",
                ]
            )
            headers[name] = ("Bearer " if name == "Authorization" else "") + marker
        return headers, markers

    def sign(self, body: bytes, headers: dict[str, str]) -> None:
        """Standard Webhooks headers, computed over the raw bytes (any bytes, like a sender)."""
        msg_id = "msg_" + self.marker()
        timestamp = str(int(time.time()))
        key = base64.b64decode(self.secrets.webhook.removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
        headers.update(
            {
                "webhook-id": msg_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
            }
        )
        headers.setdefault("Content-Type", "application/json")

    def path(self) -> str:
        return self.rng.choice(["/", "/", "/", "/hook", "/robots.txt", "/%2e%2e/", "/?a=b"])

    def method(self) -> str:
        return self.rng.choices(
            ["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"],
            weights=[20, 2, 1, 1, 1, 1, 1],
        )[0]

    # -- kinds ---------------------------------------------------------------------------

    def random_bytes(self) -> Case:
        headers, markers = self.headers(self.rng.randint(0, 2))
        body = self.rng.randbytes(self.rng.randint(0, 2048))
        return Case("random-bytes", self.method(), self.path(), headers, body, markers=markers)

    def mutated_unsigned(self) -> Case:
        headers, markers = self.headers(self.rng.randint(0, 1))
        document = self.mutate(self.rng.choice(self.seeds))
        body = json.dumps(document).encode()
        if self.rng.random() < 0.3:
            body = self.flip_bytes(body)
        return Case("mutated-unsigned", "POST", self.path(), headers, body, markers=markers)

    def sender_mimic(self) -> Case:
        headers, markers = self.headers(self.rng.randint(1, 3))
        body = json.dumps(self.mutate(self.rng.choice(self.seeds))).encode()
        return Case("sender-mimic", "POST", self.path(), headers, body, markers=markers)

    def signed_random(self) -> Case:
        headers, markers = self.headers(0)
        body = json.dumps(self.value()).encode()
        self.sign(body, headers)
        return Case("signed-random", "POST", "/", headers, body, True, markers)

    def signed_mutated(self) -> Case:
        headers, markers = self.headers(0)
        seed = self.rng.choice(self.seeds[:1] + [s for s in self.seeds if "event" in s])
        document = self.mutate(seed)
        if isinstance(document, dict) and self.rng.random() < 0.5:
            document["callback_url"] = self.rng.choice(
                [self.callback_url, "https://169.254.169.254/", "http://127.0.0.1:1/"]
            )
        body = json.dumps(document).encode()
        self.sign(body, headers)
        return Case("signed-mutated", "POST", "/", headers, body, True, markers)

    def signed_then_tampered(self) -> Case:
        headers, markers = self.headers(0)
        body = json.dumps(self.rng.choice(self.seeds)).encode()
        self.sign(body, headers)
        what = self.rng.randint(0, 3)
        if what == 0:
            body = self.flip_bytes(body)
        elif what == 1:
            headers["webhook-timestamp"] = str(int(time.time()) - 3600)
        elif what == 2:
            headers["webhook-id"] = "msg_other"
        else:
            old = datetime.now(UTC) - timedelta(minutes=10)
            headers["webhook-signature"] = Webhook(self.secrets.webhook).sign(
                headers["webhook-id"], old, body.decode()
            )
        # A case that changed nothing would be authentic; every branch changes something.
        return Case("signed-tampered", "POST", "/", headers, body, False, markers)

    def bearer(self) -> Case:
        headers, markers = self.headers(0)
        good = self.rng.random() < 0.5
        token = self.secrets.webhook_token if good else self.secrets.webhook_token[:-1] + "x"
        headers["Authorization"] = f"Bearer {token}"
        headers["Content-Type"] = "application/json"
        body = json.dumps(self.mutate(self.seeds[0])).encode()
        return Case("bearer", "POST", "/", headers, body, good, markers)

    def extremes(self) -> Case:
        headers, markers = self.headers(0)
        choice = self.rng.randint(0, 3)
        if choice == 0:
            body = b"x" * (self.body_limit + self.rng.randint(1, 4096))
        elif choice == 1:
            depth = self.rng.choice([33, 200, 5000, 100_000])
            body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        elif choice == 2:
            body = b'{"event": "pre-deploy", "x": "\xff\xfe\xfd"}'
        else:
            body = json.dumps({"k" + str(i): i for i in range(20000)}).encode()
        signed = self.rng.random() < 0.5
        if signed:
            self.sign(body, headers)
        return Case("extremes", "POST", "/", headers, body, signed, markers)

    def hostile_json(self) -> Case:
        """A seed with a value the parser or the models can choke on, anywhere in it: a number
        over Python's int-conversion limit, NaN/Infinity, an overflowing float, a lone
        surrogate (in a value or a name), and around it a BOM or a duplicate key; sent as it
        is, or as one record of a delivery (Pub/Sub data, a CloudEvents batch, a Kafka trigger
        message) next to good ones."""
        headers, markers = self.headers(0)
        document = json.loads(json.dumps(self.rng.choice(self.seeds)))
        text = self.splice(document)
        if self.rng.random() < 0.1:
            text = "\ufeff" + text
        if self.rng.random() < 0.1 and text.startswith("{"):
            text = '{"event":"pre-deploy",' + text[1:]  # a duplicate (or an extra) key
        wrap = self.rng.randint(0, 4)
        good = json.dumps({"event": "pre-deploy", "id": self.marker(), "instance_id": INSTANCE})
        if wrap == 1:
            data = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
            text = json.dumps(
                {"message": {"data": data, "messageId": self.marker()}, "subscription": "s"}
            )
            headers["Content-Type"] = "application/json"
        elif wrap == 2:
            ce = '{"specversion":"1.0","id":"%s","source":"fuzz","type":"com.example.pre-deploy",'
            text = f'[{ce % self.marker()}"data":{text}}},{ce % self.marker()}"data":{good}}}]'
            headers["Content-Type"] = "application/cloudevents-batch+json"
        elif wrap == 3:
            text = (
                '{"trigger_type":"KAFKA","instance_id":"i","records":[{"topic_id":"t",'
                f'"messages":[{json.dumps(good)},{text},{json.dumps(text)}]}}]}}'
            )
            headers["Content-Type"] = "application/json"
        body = text.encode("utf-8", "surrogatepass")
        signed = self.rng.random() < 0.6
        if signed:
            self.sign(body, headers)
        return Case("hostile-json", "POST", "/", headers, body, signed, markers)

    def splice(self, document: Any) -> str:
        """``document`` as JSON text with one hostile value (or name) put in at random."""
        holder: Any = document
        while isinstance(holder, dict | list) and holder and self.rng.random() < 0.6:
            inner = self.rng.choice(list(holder.values()) if isinstance(holder, dict) else holder)
            if not isinstance(inner, dict | list):
                break
            holder = inner
        placeholder = "\u0000hostile\u0000"
        if isinstance(holder, dict):
            holder["hostile" if self.rng.random() < 0.5 else self.rng.choice([*holder, "x"])] = (
                placeholder
            )
        elif isinstance(holder, list):
            holder.insert(self.rng.randint(0, len(holder)), placeholder)
        else:
            document = placeholder
        text = json.dumps(document)
        return text.replace(json.dumps(placeholder), self.rng.choice(_HOSTILE_VALUES), 1)


_HOSTILE_VALUES = [
    "9" * 4301,
    "-" + "1" * 10_000,
    "1" * 4300,  # just within the limit
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e400",
    "1" * 5000 + ".5",
    '"\\ud800"',
    '"deploy-\\udfff-1"',
    '{"\\ud83d": 1}',
    '"\\ud83d\\ude00"',  # a valid pair: fine
    "[" * 30 + "]" * 30,
]


# --------------------------------------------------------------------------------------
# Running


class Fuzzer:
    """An emulator, a callback receiver and the function's app, with fresh secrets."""

    def __init__(self, seed: int) -> None:
        from emulator import Emulator, EmulatorConfig
        from emulator.receiver import CallbackReceiver

        self.seed = seed
        self.secrets = Secrets()
        self.emulator = Emulator(EmulatorConfig(port=0, backup_seconds=0.05)).start()
        self.receiver = CallbackReceiver(self.secrets.callback).start()
        self.body_limit = 64 * 1024
        os.environ.update(self._env())
        self.scanner = _LogScanner(self.secrets.all())
        self.clients = {
            target: cast(
                FlaskClient,
                create_app(target=target, source=str(ROOT / "main.py")).test_client(),  # type: ignore[no-untyped-call]
            )
            for target in entry_points()
        }
        self.generator = Generator(
            # B311: reproducible test input, not crypto
            random.Random(seed),  # noqa: S311 # nosec B311
            self.secrets,
            self.receiver.url + "/hook",
            self.body_limit,
        )
        self.count = 0
        self.statuses: Counter[int] = Counter()
        self.kinds: Counter[str] = Counter()
        self.findings: list[Finding] = []
        self._upstream_seen = 0

    def _env(self) -> dict[str, str]:
        return {
            **self.emulator.config.function_env(self.emulator.url),
            "WEBHOOK_SECRET": self.secrets.webhook,
            "WEBHOOK_TOKEN": self.secrets.webhook_token,
            "CALLBACK_SECRET": self.secrets.callback,
            "GITHUB_WEBHOOK_SECRET": self.secrets.github,
            "GITLAB_WEBHOOK_TOKEN": self.secrets.gitlab,
            "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
            "CALLBACK_TIMEOUT_SECONDS": "2",
            "MAX_BODY_BYTES": str(self.body_limit),
            "LOG_LEVEL": "DEBUG",
        }

    def close(self) -> None:
        self.receiver.stop()
        self.emulator.stop()

    @contextlib.contextmanager
    def _logs_scanned(self) -> Iterator[None]:
        original = sys.stderr
        sys.stderr = self.scanner
        try:
            yield
        finally:
            sys.stderr = original

    def run(self, seconds: float, max_cases: int | None = None) -> None:
        deadline = time.monotonic() + seconds
        with self._logs_scanned():
            while time.monotonic() < deadline and (max_cases is None or self.count < max_cases):
                if self.count % 500 == 0:
                    self.emulator.reset()
                    self.receiver.clear()
                    self._upstream_seen = 0
                self.one(self.generator.case())

    def one(self, case: Case) -> None:
        target = self.generator.rng.choice(list(self.clients))
        client = self.clients[target]
        received_before = len(self.receiver.received)
        leaks_before = self.scanner.leaks
        try:
            response = client.open(
                case.path, method=case.method, headers=case.headers, data=case.body
            )
            status, text = response.status_code, response.get_data(as_text=True)
        except Exception as exc:  # a crash of the framework itself is a finding too
            status, text = 599, f"client raised {type(exc).__name__}"
        upstream = len(self.emulator.requests())  # callbacks are sent before the answer
        problems = check(
            case,
            status,
            text,
            upstream - self._upstream_seen,
            len(self.receiver.received) - received_before,
            self.secrets.all(),
            platform_verified=target == "event",
        )
        self._upstream_seen = upstream
        if self.scanner.leaks > leaks_before:
            problems.append("a log line contains a configured secret")
        self.count += 1
        self.statuses[status] += 1
        self.kinds[case.kind] += 1
        for problem in problems:
            finding = Finding(problem, f"[{target}] {case.describe()}")
            if len(self.findings) < 200:
                self.findings.append(finding)

    def report(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "requests": self.count,
            "entry_points": list(self.clients),
            "by_kind": dict(self.kinds),
            "by_status": {str(k): v for k, v in sorted(self.statuses.items())},
            "log_lines": self.scanner.lines,
            "findings": [finding.__dict__ for finding in self.findings],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    parser.add_argument("--max-requests", type=int, default=None, help="stop after this many")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run")
    parser.add_argument("--report", type=Path, default=None, help="write the report as JSON")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    fuzzer = Fuzzer(seed)
    started = time.monotonic()
    try:
        fuzzer.run(args.seconds, args.max_requests)
    finally:
        fuzzer.close()
    report = fuzzer.report()
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2))
    print(
        f"fuzz: {report['requests']} requests in {report['seconds']} s (seed {seed}) "
        f"to {', '.join(report['entry_points'])}; statuses {report['by_status']}; "
        f"kinds {report['by_kind']}; {report['log_lines']} log lines scanned; "
        f"{len(report['findings'])} finding(s)"
    )
    for finding in report["findings"][:20]:
        print(f"  FINDING {finding['problem']}\n    {finding['case'][:500]}")
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
