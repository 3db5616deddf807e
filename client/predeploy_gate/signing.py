"""Standard Webhooks signing (https://www.standardwebhooks.com), as the function verifies it.

The signature is ``v1,`` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where the key is
the base64 part of the ``whsec_`` secret. A status GET is signed the same way over its empty
body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

__all__ = ["SecretError", "decode_secret", "new_message_id", "sign_headers"]


class SecretError(ValueError):
    """The secret is not a ``whsec_`` Standard Webhooks secret (its value is never shown)."""


def decode_secret(secret: str) -> bytes:
    value = secret.strip()
    if not value.startswith("whsec_"):
        raise SecretError("must start with whsec_ (a Standard Webhooks secret)")
    text = value[len("whsec_") :]
    try:  # padded as the function reads it (config.py), so the same secret works on both sides
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("the part after whsec_ is not valid base64") from None
    if not key:
        raise SecretError("the part after whsec_ is empty")
    return key


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def sign_headers(
    key: bytes, body: bytes, message_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body``."""
    when = int(time.time()) if timestamp is None else timestamp
    content = message_id.encode() + b"." + str(when).encode() + b"." + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(when),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
