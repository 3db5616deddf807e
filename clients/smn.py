"""SMN's own URLs: the certificate that signs its messages, and subscription confirmation.

Both URLs arrive inside a message, so they are the sender's choice until the message is
verified, and the confirmation URL is not covered by anything we can check but its host.
Every fetch therefore passes the policy it is given (``events.smn.url_refusal``: https on the
region's SMN and console hosts, or the ``SMN_ENDPOINT`` override) and then the SSRF guard
(``clients.ssrf``: public addresses only, checked at connect time; only the host of
``SMN_ENDPOINT`` may be private, for an emulator). No redirect is followed, each fetch has a
timeout and a size limit. Certificates are cached per URL (bounded), so a burst of
notifications costs one download; the HTTP client is built on first use, so a function that
never sees SMN pays nothing for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import httpx

from clients import http
from clients.ssrf import SsrfGuard
from clients.tls import shared_context
from errors import UpstreamUnavailableError

__all__ = ["SmnClient", "SmnError"]

_MAX_BYTES = 64 * 1024


class SmnError(LookupError):
    """SMN answered, but not with what we need (a 4xx, or a body that is too large)."""


class SmnClient:
    """Certificate provider and subscription confirmer for SMN messages."""

    def __init__(
        self,
        refusal: Callable[[str], str | None],
        *,
        private_hosts: Iterable[str] = (),
        timeout: float = 5.0,
        cache_size: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._refusal = refusal
        self._guard = SsrfGuard(allowed_hosts=private_hosts, allow_variable="SMN_ENDPOINT")
        self._timeout = timeout
        self._transport = transport
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    def certificate(self, url: str) -> bytes:
        """The certificate at ``url`` as served (PEM or DER), from the cache when we have it."""
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                self._cache.move_to_end(url)
                return cached
        body = self._get(url)
        with self._lock:
            self._cache[url] = body
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return body

    def confirm(self, url: str) -> None:
        """GET the subscription's confirmation URL, which is how SMN takes a confirmation."""
        self._get(url)

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                if self._transport is not None:  # tests: a transport for hosts no test can own
                    self._http = http.client(
                        timeout_seconds=self._timeout, transport=self._transport
                    )
                else:
                    self._http = self._guard.client(timeout=self._timeout, verify=shared_context())
            return self._http

    def _get(self, url: str) -> bytes:
        reason = self._refusal(url)
        if reason is None and self._transport is None:
            reason = self._guard.refusal(url)
        if reason is not None:  # the source checked the policy first; the pin stays with the I/O
            raise SmnError(f"refusing to fetch an SMN URL that {reason}")
        try:
            with self._client().stream("GET", url) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise UpstreamUnavailableError(f"SMN answered {response.status_code}")
                if not response.is_success:
                    raise SmnError(f"SMN answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_BYTES:
                        raise SmnError(f"SMN's answer is larger than {_MAX_BYTES} bytes")
                return body
        except httpx.TimeoutException:
            raise UpstreamUnavailableError("SMN did not answer in time", timed_out=True) from None
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(
                f"SMN could not be reached ({type(exc).__name__})"
            ) from None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
