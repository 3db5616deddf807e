"""Authentication for the TaurusDB API, as ``httpx.Auth`` classes.

``TokenAuth``  IAM password authentication: one cached ``X-Auth-Token`` per process, fetched
               at most once at a time, renewed before it expires and after a 401.
``AkSkAuth``   AK/SK request signing ("SDK-HMAC-SHA256 Access=…", the Huawei SDK variant).

Neither ever puts a password, token, secret key or signature into an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx

import logs
from clients import http
from clients.retry import request_timeout
from errors import AuthenticationError, UpstreamUnavailableError

__all__ = [
    "CONTENT_TYPE",
    "SIGNED_HEADERS",
    "SIGNING_ALGORITHM",
    "AkSkAuth",
    "TokenAuth",
    "canonical_request",
    "sign_string",
    "signed_header_names",
    "string_to_sign",
]

#: Error codes (on a 4xx other than 401) that mean "this token is no longer good".
#: APIGW.0307 "the token must be updated"; DBS.280056 "invalid token" (HTTP 403).
_TOKEN_REJECTED_CODES = frozenset({"APIGW.0301", "APIGW.0307", "DBS.280056"})


def _error_code(response: httpx.Response) -> str | None:
    """The ``error_code`` (or ``code``) of an error body, if it is JSON and has one."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    code = data.get("error_code", data.get("code"))
    return code if isinstance(code, str) else None


# --------------------------------------------------------------------------------------
# IAM token


@dataclass(frozen=True)
class _Token:
    value: str
    project_id: str | None
    refresh_at: float
    """``time.monotonic()`` after which the token is no longer handed out."""


class TokenAuth(httpx.Auth):
    """IAM password authentication with a process-wide cached token.

    The token is requested through this object's own small ``httpx.Client`` (never through the
    API client it authenticates), under a lock, so that concurrent requests trigger exactly one
    IAM call; the threads that waited reuse its token. A 401 from the API (or a 4xx whose error
    code says the token is stale) invalidates the token that request used, and the request is
    sent once more with a fresh one.
    """

    def __init__(
        self,
        *,
        auth_url: str,
        username: str,
        password: str,
        domain_name: str,
        project_id: str | None,
        project_name: str | None,
        timeout: float,
        margin_seconds: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not project_id and not project_name:
            raise ValueError("TokenAuth needs a project_id or a project_name to scope the token")
        self._auth_url = auth_url.rstrip("/")
        self._username = username
        self._password = password
        self._domain_name = domain_name
        self._project_id = project_id or None
        self._project_name = project_name or None
        self._timeout = timeout
        self._margin = margin_seconds
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._http = http.client(
            timeout_seconds=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __repr__(self) -> str:
        return f"TokenAuth(auth_url={self._auth_url!r}, username={self._username!r})"

    # -- public -------------------------------------------------------------------------

    def project_id(self) -> str:
        """The configured project id, else the one IAM scoped the token to."""
        if self._project_id:
            return self._project_id
        token = self._valid_token()
        if not token.project_id:
            raise AuthenticationError(
                f"IAM issued a token for user {self._username!r} without a project; "
                "set OS_PROJECT_ID",
            )
        return token.project_id

    def prefetch(self) -> None:
        """Fetch the token now (one attempt), so that the first request finds it cached.

        A request that arrives meanwhile waits for this fetch instead of starting its own (the
        lock); if it fails, that request fetches again, as if nothing had been prefetched.
        """
        self._valid_token()

    def close(self) -> None:
        self._http.close()

    # -- httpx.Auth ---------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        # Overridden (not auth_flow) because fetching a token is I/O under a lock.
        request.read()  # make the body replayable for the one resend
        token = self._valid_token()
        request.headers["X-Auth-Token"] = token.value
        response = yield request
        if not self._token_rejected(response):
            return
        self._invalidate(token)
        token = self._valid_token()
        request.headers["X-Auth-Token"] = token.value
        yield request  # a second rejection is returned to the caller as it is

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise NotImplementedError("TokenAuth supports httpx.Client only, not AsyncClient")
        yield request  # pragma: no cover - makes this an async generator

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _token_rejected(response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        if response.status_code in (400, 403):
            response.read()
            return _error_code(response) in _TOKEN_REJECTED_CODES
        return False

    def _valid_token(self) -> _Token:
        """The cached token, or a fresh one; double-checked so only one thread fetches."""
        token = self._token
        if token is not None and time.monotonic() < token.refresh_at:
            return token
        with self._lock:
            token = self._token
            if token is not None and time.monotonic() < token.refresh_at:
                return token
            token = self._fetch()
            self._token = token
            return token

    def _invalidate(self, used: _Token) -> None:
        # Only if no other thread has replaced it already: a token renewed meanwhile stays.
        with self._lock:
            if self._token is used:
                self._token = None

    def _body(self) -> dict[str, Any]:
        project: dict[str, str] = (
            {"id": self._project_id} if self._project_id else {"name": self._project_name or ""}
        )
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._username,
                            "password": self._password,
                            "domain": {"name": self._domain_name},
                        }
                    },
                },
                "scope": {"project": project},
            }
        }

    def _fetch(self) -> _Token:
        url = f"{self._auth_url}/auth/tokens"
        host = httpx.URL(url).host
        started = time.monotonic()
        timeout = request_timeout(self._timeout)  # the event's deadline bounds IAM too
        try:
            response = self._http.post(
                url,
                params={"nocatalog": "true"},
                content=json.dumps(self._body()).encode(),
                headers={"Content-Type": "application/json;charset=utf8"},
                timeout=http.timeout(timeout),
            )
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(
                f"IAM at {host} did not answer within {timeout:.3g} s", timed_out=True
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(
                f"IAM at {host} could not be reached ({type(exc).__name__})"
            ) from exc

        if not response.is_success:
            message = self._scrub(_iam_message(response))
            status = response.status_code
            if status == 429 or status >= 500:
                raise UpstreamUnavailableError(
                    f"IAM at {host} is unavailable ({status}): {message}"
                )
            raise AuthenticationError(
                f"IAM refused the credentials for user {self._username!r} ({status}): {message}",
                status_code=status,
            )
        return self._parse(response, started)

    def _parse(self, response: httpx.Response, started: float) -> _Token:
        value = response.headers.get("X-Subject-Token", "")
        try:
            token = response.json()["token"]
            expires_at = _parse_iam_time(token["expires_at"])
            issued = token.get("issued_at")
            project = token.get("project") or {}
            project_id = project.get("id") if isinstance(project, dict) else None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthenticationError(
                f"IAM answered {response.status_code} for user {self._username!r} "
                "but the token body could not be read",
                status_code=response.status_code,
            ) from None
        if not value:
            raise AuthenticationError(
                f"IAM answered {response.status_code} for user {self._username!r} "
                "without an X-Subject-Token header",
                status_code=response.status_code,
            )
        logs.remember_credential(value)  # redacted wherever it is quoted from now on
        # The lifetime comes from IAM's own two timestamps when it gives both, so a skewed
        # local clock does not shorten or stretch it.
        try:
            lifetime = (expires_at - _parse_iam_time(issued)).total_seconds()
        except (TypeError, ValueError):
            lifetime = (expires_at - datetime.now(UTC)).total_seconds()
        lifetime = max(lifetime, 0.0)
        margin = min(self._margin, lifetime / 2)
        return _Token(
            value=value,
            project_id=project_id if isinstance(project_id, str) and project_id else None,
            refresh_at=started + lifetime - margin,
        )

    def _scrub(self, text: str) -> str:
        # Belt and braces: never let an echoing IAM put the password or a token into our message.
        text = text.replace(self._password, "***") if self._password else text
        return logs.scrub(text)


def _parse_iam_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise TypeError("not a timestamp")
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iam_message(response: httpx.Response) -> str:
    """IAM's explanation: Keystone's ``{"error": {"message"}}`` or the gateway's ``error_msg``."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return http.capped(error["message"])
        for key in ("error_msg", "message"):
            if isinstance(data.get(key), str):
                return http.capped(data[key])
    return response.reason_phrase or f"HTTP {response.status_code}"


# --------------------------------------------------------------------------------------
# AK/SK signing

SIGNING_ALGORITHM = "SDK-HMAC-SHA256"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_UNSIGNED_PAYLOAD_HEADER = "x-sdk-content-sha256"

#: The headers that are signed when present: what the gateway needs to tie the signature to
#: this request (its host, time, project, body type, temporary credential), as the official
#: SDK signs them, and nothing a proxy rewrites (``Accept-Encoding``, ``User-Agent``,
#: ``Content-Length`` when it re-chunks, hop-by-hop headers).
SIGNED_HEADERS = frozenset(
    {
        "content-type",
        "host",
        "x-project-id",
        "x-sdk-content-sha256",
        "x-sdk-date",
        "x-security-token",
    }
)
#: The SDK's Content-Type for JSON bodies (it signs it, so ours must be the same).
CONTENT_TYPE = "application/json;charset=utf-8"


def _encode(text: str) -> str:
    """RFC 3986 percent-encoding: only unreserved characters stay as they are."""
    return quote(text, safe="~")


def _canonical_uri(raw_path: str) -> str:
    segments = [_encode(unquote(segment)) for segment in raw_path.split("/")]
    path = "/".join(segments) or "/"
    return path if path.endswith("/") else path + "/"


def _canonical_query(raw_query: str) -> str:
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def signed_header_names(headers: Iterable[str]) -> list[str]:
    """The ``SIGNED_HEADERS`` present, lower-cased and sorted."""
    return sorted({name.lower() for name in headers} & SIGNED_HEADERS)


def canonical_request(request: httpx.Request, signed_headers: list[str]) -> str:
    """``METHOD\\nURI/\\nQUERY\\nHEADERS\\nSIGNED\\nSHA256(body)``, as the gateway rebuilds it."""
    url = request.url
    headers = "".join(
        f"{name}:{request.headers.get(name, '').strip()}\n" for name in signed_headers
    )
    payload_hash = (
        request.headers.get(_UNSIGNED_PAYLOAD_HEADER) or hashlib.sha256(request.content).hexdigest()
    )
    return "\n".join(
        [
            request.method.upper(),
            _canonical_uri(url.raw_path.split(b"?", 1)[0].decode("ascii")),
            _canonical_query(url.query.decode("ascii")),
            headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{SIGNING_ALGORITHM}\n{sdk_date}\n{digest}"


def sign_string(secret_key: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 with the secret key itself as key (the "Access=" variant)."""
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AkSkAuth(httpx.Auth):
    """Signs each request with an access key / secret key pair; no token, no I/O.

    Runs after httpx has built the request (its ``Host``, the client's default headers), so
    what is signed is what is sent; only ``SIGNED_HEADERS`` are signed, so a proxy that
    rewrites ``Accept-Encoding`` or ``User-Agent`` does not break the signature.
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        project_id: str,
        security_token: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._project_id = project_id
        self._security_token = security_token or None
        self._clock = clock or _utc_now

    def __repr__(self) -> str:
        return f"AkSkAuth(access_key={self._access_key!r}, project_id={self._project_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        sdk_date = self._clock().astimezone(UTC).strftime(_DATE_FORMAT)
        headers = request.headers
        headers.pop("Authorization", None)
        headers["X-Sdk-Date"] = sdk_date
        headers["X-Project-Id"] = self._project_id
        if self._security_token:
            headers["X-Security-Token"] = self._security_token
        if "Host" not in headers:
            headers["Host"] = request.url.netloc.decode("ascii")
        signed = signed_header_names(headers.keys())
        canonical = canonical_request(request, signed)
        signature = sign_string(self._secret_key, string_to_sign(sdk_date, canonical))
        headers["Authorization"] = (
            f"{SIGNING_ALGORITHM} Access={self._access_key}, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        )
        yield request
