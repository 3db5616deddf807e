"""The API gateway's checks in front of every TaurusDB call: an IAM token or an AK/SK signature.

``Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<names>, Signature=<hex>`` selects
AK/SK verification; anything else is the ``X-Auth-Token`` check. This is the server's side of
the signing scheme, written from the published algorithm (research/otc-api.md §4.3) and not
from the function's client code, so that the two can catch each other's mistakes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote

from emulator import rules
from emulator.config import EmulatorConfig
from emulator.state import State, Token
from emulator.wire import Request

__all__ = [
    "ALGORITHM",
    "AccessKey",
    "authenticate",
    "canonical_request",
    "signature",
    "string_to_sign",
    "verify_aksk",
]

ALGORITHM = "SDK-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=15)
_SDK_DATE = "%Y%m%dT%H%M%SZ"
_UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTHORIZATION = re.compile(
    ALGORITHM + r"\s+Access=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)"
)


@dataclass(frozen=True)
class AccessKey:
    """The caller, when it signed with an access key."""

    access_key: str
    temporary: bool


def authenticate(
    request: Request, project_id: str, state: State, *, now: datetime | None = None
) -> Token | AccessKey:
    """AK/SK when the Authorization header says so, else the IAM token."""
    if (request.header("Authorization") or "").startswith(ALGORITHM):
        return verify_aksk(request, project_id, state.config, now or datetime.now(UTC))
    return _token(request, project_id, state)


def _token(request: Request, project_id: str, state: State) -> Token:
    """Missing/unknown token → APIGW.0301; expired or other project's token → APIGW.0307."""
    value = request.header("X-Auth-Token")
    if not value:
        raise rules.TOKEN_MISSING.error()
    token, expired = state.find_token(value)
    if token is None:
        raise rules.TOKEN_INVALID.error()
    if expired or token.project_id != project_id:
        raise rules.TOKEN_EXPIRED.error()
    return token


def verify_aksk(
    request: Request, project_id: str, config: EmulatorConfig, now: datetime
) -> AccessKey:
    """Rebuild the canonical request, recompute the signature, compare in constant time."""
    found = _AUTHORIZATION.fullmatch((request.header("Authorization") or "").strip())
    if found is None:
        raise rules.AKSK_SIGNATURE_FAIL.error()
    access_key, signed_text, claimed = found.groups()
    keys = {
        config.access_key: (config.secret_key, None),
        config.temporary_access_key: (config.temporary_secret_key, config.security_token),
    }
    if access_key not in keys:
        raise rules.AKSK_UNKNOWN.error()
    secret_key, security_token = keys[access_key]

    signed = signed_text.split(";")
    if (
        "x-sdk-date" not in signed
        or signed != sorted(set(signed))
        or any(name != name.lower() or request.header(name) is None for name in signed)
    ):
        raise rules.AKSK_SIGNATURE_FAIL.error()
    sdk_date = request.header("X-Sdk-Date") or ""
    try:
        signed_at = datetime.strptime(sdk_date, _SDK_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise rules.AKSK_DATE.error() from None
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise rules.AKSK_DATE.error()

    expected = signature(secret_key, string_to_sign(sdk_date, canonical_request(request, signed)))
    if not hmac.compare_digest(expected, claimed.lower()):
        raise rules.AKSK_SIGNATURE_FAIL.error()
    if security_token is not None and not hmac.compare_digest(
        (request.header("X-Security-Token") or "").encode(), security_token.encode()
    ):
        raise rules.AKSK_SECURITY_TOKEN.error()
    header_project = request.header("X-Project-Id")
    if project_id != config.project_id or header_project not in (None, project_id):
        raise rules.AKSK_PROJECT.error()
    return AccessKey(access_key=access_key, temporary=security_token is not None)


def _uri_encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_request(request: Request, signed_headers: list[str]) -> str:
    """``METHOD``, URI (each segment encoded, ending in ``/``), sorted query, the signed
    headers as ``name:value`` lines, their names, and the hex SHA-256 of the body."""
    segments = [
        _uri_encode(unquote(part)) for part in (request.raw_path or request.path).split("/")
    ]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(parse_qsl(request.raw_query, keep_blank_values=True))
    query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in pairs)
    headers = "".join(f"{name}:{(request.header(name) or '').strip()}\n" for name in signed_headers)
    if request.header("X-Sdk-Content-Sha256") == _UNSIGNED_PAYLOAD:
        body_hash = _UNSIGNED_PAYLOAD
    else:
        body_hash = hashlib.sha256(request.body).hexdigest()
    return "\n".join(
        [request.method.upper(), uri, query, headers, ";".join(signed_headers), body_hash]
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
