"""Test helpers for the event sources: their secrets, signing the way each sender does, a local
SMN endpoint, and the samples of ``events/samples/`` made deliverable to a test setup.

The signing here is written from the senders' documentation, not from our verification code,
so a mistake in one does not hide in the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from helpers import INSTANCE, SAMPLES
from helpers import make_client as make_client
from tools.invoke import fresh as fresh

GITHUB_SECRET = "github-test-secret-9c2f4e1a"
GITLAB_TOKEN = "gitlab-test-token-3b7d5a0e"
GITLAB_SIGNING_TOKEN = "whsec_" + base64.b64encode(b"gitlab-signing-test-key-01234567").decode()
STAGING = "5f2d9a4c8e7b4b1da3c60f9e2b7d1a84in07"
TOPIC = "urn:smn:eu-de:0a1b2c3d4e5f60718293a4b5c6d7e8f9:predeploy-backup"
SAMPLE_CALLBACK = "https://ci.example.com/hooks/backup"
SMN_URL = "https://smn.eu-de.otc.t-systems.com"


def source_settings(
    smn_url: str = SMN_URL, callback_url: str | None = None
) -> dict[str, str | None]:
    """What the sources add to ``function_env``: every source's secret, the instance map, the
    SMN endpoint; without ``callback_url``, no CALLBACK_URL at all (``None`` unsets it).

    Overrides for ``set_env``/``env_fixture`` in a test, or ``server_env`` for a server process.
    """
    return {
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "GITLAB_WEBHOOK_TOKEN": GITLAB_TOKEN,
        "INSTANCE_MAP": json.dumps({"production": INSTANCE, "staging": STAGING}),
        "SMN_ENDPOINT": smn_url,
        "SMN_TOPIC_URNS": TOPIC,
        "CALLBACK_URL": callback_url,
        "CALLBACK_RETRY_SECONDS": "0",  # one attempt: most tests here do not look at callbacks
    }


def github_signature(body: bytes, secret: str = GITHUB_SECRET) -> str:
    """``X-Hub-Signature-256`` as GitHub computes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- SMN --------------------------------------------------------------------------------------


@dataclass
class SigningKey:
    """An RSA key and a self-made certificate, as SMN's signing certificate."""

    key: rsa.RSAPrivateKey
    pem: bytes

    @classmethod
    def make(cls, common_name: str = "smn.eu-de.otc.t-systems.com") -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(tz=UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, pem=certificate.public_bytes(serialization.Encoding.PEM))

    def sign(self, message: dict[str, Any]) -> str:
        """The base64 signature SMN puts in ``signature`` (user guide, signature section)."""
        if message["type"] == "Notification":
            keys = ["message", "message_id", "subject", "timestamp", "topic_urn", "type"]
        else:
            keys = ["message", "message_id", "subscribe_url", "timestamp", "topic_urn", "type"]
        if not message.get("subject"):
            keys = [k for k in keys if k != "subject"]  # an empty subject is not signed
        text = "".join(f"{k}\n{message[k]}\n" for k in keys)
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


_KEYS: list[SigningKey] = []


def signing_key(number: int = 0) -> SigningKey:
    """Keys are slow to make: one per number for the whole session."""
    while len(_KEYS) <= number:
        _KEYS.append(SigningKey.make())
    return _KEYS[number]


@dataclass
class SmnEndpoint:
    """A local stand-in for the SMN endpoint: serves the certificate, takes confirmations."""

    key: SigningKey
    url: str = ""
    requests: list[str] = field(default_factory=list)
    cert_path: str = "/smn/SMN_eu-de_94f60ccdfbee4588aa4d555935a56ba3.pem"

    @property
    def cert_url(self) -> str:
        return self.url + self.cert_path

    def confirm_url(self, token: str = "0a419ac94f80f2c62f14c01e34ae5dfc") -> str:
        return (
            f"{self.url}/smn/subscription/confirm?token={token}&topic_urn={TOPIC}"
            "&region=eu-de&region_id=eu-de"
        )

    def message(self, kind: str = "Notification", **fields: Any) -> dict[str, Any]:
        """A signed SMN message; ``fields`` override before signing, ``None`` drops a field."""
        message: dict[str, Any] = {
            "type": kind,
            "topic_urn": TOPIC,
            "message_id": "bf94b63a5dbb4a7bac20e2e6b3f6d0a1",
            "signature_version": "v1",
            "message": json.dumps({"event": "pre-deploy", "id": "d-1", "instance_id": INSTANCE}),
            "signing_cert_url": self.cert_url,
            "timestamp": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if kind == "Notification":
            message["subject"] = "pre-deploy"
        else:
            message["message"] = f"You are invited to subscribe to topic: {TOPIC}."
            message["subscribe_url"] = self.confirm_url()
        message.update(fields)
        message = {k: v for k, v in message.items() if v is not None}
        message["signature"] = self.key.sign(message)
        return message


@contextmanager
def smn_endpoint(key: SigningKey | None = None) -> Iterator[SmnEndpoint]:
    endpoint = SmnEndpoint(key=key or signing_key())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint.requests.append(self.path)
            if self.path == endpoint.cert_path:
                self._answer(200, endpoint.key.pem, "application/x-pem-file")
            elif self.path == "/smn/moved.pem":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/smn/elsewhere.pem")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/smn/subscription/confirm"):
                self._answer(200, b'{"request_id": "a1b2c3"}', "application/json")
            else:
                self._answer(404, b"not found", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


# --- samples ----------------------------------------------------------------------------------


DEAD_END = "http://127.0.0.1:9/hooks/backup"
"""Where samples call back in tests that do not look at callbacks: local, and nobody listens."""


def sample(name: str, callback: str | None = DEAD_END) -> tuple[bytes, dict[str, str]]:
    """A sample's body and headers, ready to send: its callback URL moved to ``callback`` and
    its send times to now (``fresh``); with ``callback=None``, exactly as in the file.

    Tests never reach out to the sample's ``ci.example.com``. A moved body no longer matches
    a signature the sample's headers carry: tests that need one sign the body themselves.
    """
    body = (SAMPLES / f"{name}.json").read_bytes()
    headers = json.loads((SAMPLES / f"{name}.headers.json").read_text())
    if callback is not None:
        document = json.loads(body)
        moved = fresh(retarget(document, SAMPLE_CALLBACK, callback))
        if moved != document:
            body = json.dumps(moved, indent=2).encode()
        headers = fresh(headers)
    return body, headers


def sample_names() -> list[str]:
    return sorted(
        path.name.removesuffix(".json")
        for path in SAMPLES.glob("*.json")
        if not path.name.endswith(".headers.json")
    )


def retarget(value: Any, old: str, new: str) -> Any:
    """``old`` replaced by ``new`` in every string, also inside JSON text and base64 of JSON."""
    if isinstance(value, dict):
        return {k: retarget(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [retarget(v, old, new) for v in value]
    if not isinstance(value, str):
        return value
    if value == old:
        return new
    inner = _json_in(value)
    if inner is not None and old in json.dumps(inner):
        return json.dumps(retarget(inner, old, new), separators=(",", ":"))
    decoded = _base64_json_in(value)
    if decoded is not None and old in json.dumps(decoded):
        text = json.dumps(retarget(decoded, old, new), separators=(",", ":"))
        return base64.b64encode(text.encode()).decode()
    return value


def _json_in(text: str) -> Any:
    if not text.startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _base64_json_in(text: str) -> Any:
    try:
        return _json_in(base64.b64decode(text, validate=True).decode())
    except (binascii.Error, ValueError):
        return None
