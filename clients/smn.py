"""SMN's own URLs: the certificate that signs its messages, and subscription confirmation.

Both URLs arrive inside a message, so they are the sender's choice until the message is
verified, and the confirmation URL is not covered by anything we can check but its host.
Every fetch is therefore pinned to the SMN endpoint (scheme, host and port of
``SMN_ENDPOINT``, by default ``https://smn.{region}.otc.t-systems.com``), follows no
redirect and has a timeout. Certificates are cached per URL (bounded), so a burst of
notifications costs one download.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from errors import UpstreamUnavailableError

__all__ = ["SmnClient", "SmnError"]

_CERTIFICATE_MAX_BYTES = 64 * 1024
_USER_AGENT = "predeploy-backup/0.1"


class SmnError(Exception):
    """SMN answered, but not with what we need (a 4xx, or a body that is no certificate)."""


class SmnClient:
    """One reused ``httpx.Client`` for the SMN endpoint of the region."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        cache_size: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        self.endpoint = endpoint.rstrip("/")
        self._origin = _origin(parts.scheme, parts.hostname, parts.port)
        self._cache: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": _USER_AGENT},
        )

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or ``None`` when it is on the SMN endpoint."""
        try:
            parts = urlsplit(url)
            same = _origin(parts.scheme, parts.hostname, parts.port) == self._origin
        except ValueError:
            same = False
        if not same:
            return f"must be on the SMN endpoint {self.endpoint}"
        if parts.username is not None or parts.password is not None:
            return "must not contain user information"
        return None

    def certificate(self, url: str) -> x509.Certificate:
        """The X.509 certificate at ``url`` (PEM or DER), from the cache when we have it."""
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                self._cache.move_to_end(url)
                return cached
        body = self._get(url, limit=_CERTIFICATE_MAX_BYTES)
        try:
            if b"-----BEGIN CERTIFICATE-----" in body:
                certificate = x509.load_pem_x509_certificate(body)
            else:
                certificate = x509.load_der_x509_certificate(body)
        except ValueError:
            raise SmnError("the signing certificate cannot be read") from None
        with self._lock:
            self._cache[url] = certificate
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return certificate

    def confirm(self, url: str) -> None:
        """GET the subscription's confirmation URL, which is how SMN takes a confirmation."""
        self._get(url, limit=_CERTIFICATE_MAX_BYTES)

    def _get(self, url: str, *, limit: int) -> bytes:
        reason = self.refusal(url)
        if reason is not None:  # callers check first; this keeps the pin where the I/O is
            raise ValueError(f"refusing to fetch an SMN URL that {reason}")
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise UpstreamUnavailableError(f"SMN answered {response.status_code}")
                if not response.is_success:
                    raise SmnError(f"SMN answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise SmnError(f"SMN's answer is larger than {limit} bytes")
                return body
        except httpx.TimeoutException:
            raise UpstreamUnavailableError("SMN did not answer in time", timed_out=True) from None
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(
                f"SMN could not be reached ({type(exc).__name__})"
            ) from None

    def close(self) -> None:
        self._http.close()


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int]:
    if scheme not in ("https", "http") or not host:
        raise ValueError("not an absolute http(s) URL")
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)
