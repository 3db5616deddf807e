"""The emulator as the region's SMN endpoint: its own signing certificate, subscription
confirmations, and an admin hook that signs a message the way SMN does.

SMN signs each HTTP(S) delivery with an RSA key whose certificate it serves from its endpoint
(user guide, "Message Signature Verification"). The function fetches that certificate from
``SMN_ENDPOINT`` only; pointing ``SMN_ENDPOINT`` at the emulator lets local tools send SMN
messages that verify like real ones (``POST /_emulator/smn/sign``).
"""

from __future__ import annotations

import base64
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from emulator import rules
from emulator.wire import Call, Response, Route

CERT_PATH = "/smn/SMN_eu-de_emulator.pem"
_NOTIFICATION_KEYS = ("message", "message_id", "subject", "timestamp", "topic_urn", "type")
_CONFIRMATION_KEYS = ("message", "message_id", "subscribe_url", "timestamp", "topic_urn", "type")


class SmnSigner:
    """An RSA key and a self-signed certificate, made on first use (key generation is slow)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._pem = b""

    def _ensure(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smn.emulator")])
                now = datetime.now(tz=UTC)
                certificate = (
                    x509.CertificateBuilder()
                    .subject_name(name)
                    .issuer_name(name)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - timedelta(days=1))
                    .not_valid_after(now + timedelta(days=365))
                    .sign(key, hashes.SHA256())
                )
                self._pem = certificate.public_bytes(serialization.Encoding.PEM)
                self._key = key
            return self._key

    @property
    def pem(self) -> bytes:
        self._ensure()
        return self._pem

    def sign(self, message: dict[str, Any]) -> str:
        """SMN's ``signature`` over ``key\\nvalue\\n`` per signed field (no empty subject)."""
        notification = message.get("type") == "Notification"
        keys = _NOTIFICATION_KEYS if notification else _CONFIRMATION_KEYS
        text = "".join(
            f"{key}\n{message.get(key, '')}\n"
            for key in keys
            if not (key == "subject" and not message.get("subject"))
        )
        signature = self._ensure().sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


def routes(signer: SmnSigner) -> list[Route]:
    def certificate(call: Call) -> Response:
        return Response(200, {}, {"Content-Type": "application/x-pem-file"}, raw=signer.pem)

    def confirm(call: Call) -> Response:
        return Response(200, {"request_id": call.request_id})

    def sign(call: Call) -> Response:
        message = rules.parse_json_object(
            call.request.body, empty=rules.ADMIN_BAD_REQUEST, invalid=rules.ADMIN_BAD_REQUEST
        )
        for key in ("type", "topic_urn", "message_id", "message", "timestamp"):
            if not isinstance(message.get(key), str):
                raise rules.ADMIN_BAD_REQUEST.error(f"{key} is required (a string)")
        message["signing_cert_url"] = call.request.base_url + CERT_PATH
        message["signature_version"] = "v1"
        message["signature"] = signer.sign(message)
        return Response(200, message)

    return [
        Route("smn_certificate", "GET", re.compile(re.escape(CERT_PATH)), certificate),
        Route("smn_confirm", "GET", re.compile(r"/smn/subscription/confirm"), confirm),
        Route("admin_smn_sign", "POST", re.compile(r"/_emulator/smn/sign"), sign),
    ]
