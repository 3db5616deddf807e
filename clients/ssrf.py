"""SSRF guard for URLs a sender chose: the policy, name resolution, and a pinned transport.

A URL a sender names (a callback URL, an SMN subscribe or certificate URL) must not make the
function reach what only the function can reach: the metadata service (169.254.169.254), the
VPC, localhost. The guard therefore

- accepts ``https`` only (``http`` only for explicitly allowed hosts), no ``user:password@``,
  a valid port;
- resolves the host name and refuses it if ANY of its addresses is loopback, private,
  link-local, shared (100.64.0.0/10), multicast, reserved, unspecified, IPv4-mapped,
  unique-local, site-local, a 6to4/Teredo tunnel address, or otherwise not globally routable;
  allowed hosts skip this check (an operator's escape hatch for self-hosted receivers). An
  entry ``host:port`` (``[v6]:port``) allows that one port; a bare ``host`` allows every port
  and path of that host, so name the port wherever the receiver has one;
- connects only to an address it has just checked: resolution, check and ``connect()`` happen
  together inside the transport (``GuardedTransport``), so a DNS answer that changes between
  the check and the connection (DNS rebinding) cannot redirect the request. The TLS handshake
  still uses the URL's host name for SNI and certificate verification, and the ``Host``
  header is untouched, because only the TCP connect is pinned (a custom httpcore network
  backend);
- bounds each connection's whole life (``connection_seconds``), not only each read, so a
  receiver that drips bytes cannot hold the function.

Redirects are the caller's business: ``SsrfGuard.client`` never follows them, and even a
client that did would have every hop checked again at connect time.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import httpcore
import httpx

from clients import http

__all__ = [
    "AddressRefusedError",
    "GuardedTransport",
    "IPAddress",
    "Resolver",
    "SsrfGuard",
    "address_refusal",
    "allowed_host",
    "connections_end_by",
    "system_resolver",
]

_log = logging.getLogger("predeploy.ssrf")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[IPAddress]]
"""``(host, port) -> addresses``; raises ``OSError`` when the name does not resolve."""

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_RFC1918 = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
)
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class AddressRefusedError(httpx.TransportError):
    """The host resolved, at connect time, to an address the policy refuses."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``getaddrinfo`` gives for ``host``, in its order, without duplicates."""
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def address_refusal(address: IPAddress) -> str | None:
    """The class that makes ``address`` unacceptable as a target, or ``None`` when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "IPv4-mapped"
        if address.sixtofour is not None or address.teredo is not None:
            return "IPv6 tunnel (6to4/Teredo)"
        if any(address in network for network in _NAT64):
            # DNS64/NAT64 networks give public hosts such addresses: judge the IPv4 inside.
            inner = address_refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return f"{inner} (via NAT64)" if inner else None
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "shared (100.64/10)"),
        (any(address in network for network in _RFC1918), "private"),
        (isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL, "unique-local"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (address.is_reserved, "reserved"),
        (address.is_private or not address.is_global, "special-purpose (not public)"),
    )
    for applies, name in checks:
        if applies:
            return name
    return None


_ends_by: contextvars.ContextVar[float | None] = contextvars.ContextVar("ends_by", default=None)


@contextlib.contextmanager
def connections_end_by(monotonic: float) -> Iterator[None]:
    """Connections opened in this block (this thread) end by ``monotonic`` at the latest,
    whatever ``connection_seconds`` allows: a caller's deadline reaches into the transport."""
    token = _ends_by.set(monotonic)
    try:
        yield
    finally:
        _ends_by.reset(token)


def _normal(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def allowed_host(entry: str) -> tuple[str, int | None]:
    """An allow-list entry as ``(host, port)``; ``port`` is ``None`` for a bare host (any port).

    ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address; raises
    ``ValueError`` for a port that is not a number from 1 to 65535.
    """
    text = entry.strip()
    port: str | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{entry!r} is not host, host:port or [IPv6]:port")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text
    if port is None:
        return _normal(host), None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{entry!r} names a port that is not a number from 1 to 65535")
    return _normal(host), int(port)


class SsrfGuard:
    """The policy for one kind of sender-chosen URL, and guarded HTTP clients that obey it.

    ``allowed_hosts`` (``host`` or ``host:port``, see ``allowed_host``) may be reached over
    plain ``http`` and at any address; ``allow_variable`` names the setting that lists them,
    for error messages.
    """

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        allow_variable: str = "CALLBACK_ALLOWED_HOSTS",
    ) -> None:
        self._allowed: dict[str, frozenset[int] | None] = {}
        for entry in allowed_hosts:
            if entry.strip():
                host, port = allowed_host(entry)
                ports = self._allowed.get(host, frozenset())
                if port is None or ports is None:
                    self._allowed[host] = None  # a bare host: every port
                else:
                    self._allowed[host] = ports | {port}
        self._resolve = resolver or system_resolver
        self._allow_variable = allow_variable

    def is_allowed_host(self, host: str, port: int) -> bool:
        normal = _normal(host)
        if normal not in self._allowed:
            return False
        ports = self._allowed[normal]
        return ports is None or port in ports

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be called, or ``None`` when it may (this resolves the host)."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return "must be a valid absolute URL"
        if parsed.scheme not in ("https", "http") or not parsed.host:
            return "must be an absolute https:// URL"
        if parsed.userinfo:
            return "must not contain user information (user:password@)"
        if parsed.port is not None and not 0 < parsed.port < 65536:
            return "must be a valid absolute URL (the port is out of range)"
        allowed = self._allowed_url_host(parsed)
        if parsed.scheme == "http" and not allowed:
            return f"must use https (http is allowed only for hosts in {self._allow_variable})"
        if allowed:
            return None
        host = parsed.raw_host.decode("ascii")
        try:
            self.checked_addresses(host, parsed.port or 443)
        except AddressRefusedError as exc:
            return (
                f"must not point to a {exc.reason} address "
                f"(allowed only for hosts in {self._allow_variable})"
            )
        except OSError:
            return "must name a host that resolves (the name did not resolve)"
        return None

    def _allowed_url_host(self, url: httpx.URL) -> bool:
        port = url.port or (80 if url.scheme == "http" else 443)
        return self.is_allowed_host(url.host, port) or self.is_allowed_host(
            url.raw_host.decode(), port
        )

    def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host``; every address must pass the policy unless the host is allowed.

        Raises ``AddressRefusedError`` naming the first refused class, ``OSError`` when the
        name does not resolve.
        """
        addresses = _literal(host) or list(self._resolve(host, port))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "the name did not resolve")
        if self.is_allowed_host(host, port):
            return addresses
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                _log.warning(
                    "address refused",
                    extra={
                        "fields": {
                            "outcome": "ssrf_refused",
                            "host": host,
                            "address": str(address),
                            "reason": reason,
                        }
                    },
                )
                raise AddressRefusedError(f"{host} resolves to a {reason} address", reason=reason)
        return addresses

    def transport(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        connection_seconds: float | None = None,
    ) -> GuardedTransport:
        return GuardedTransport(self, verify=verify, connection_seconds=connection_seconds)

    def client(
        self,
        *,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Client:
        """An ``httpx.Client`` for sender-chosen URLs: guarded, no redirects, no proxies from
        the environment (a proxy would do the resolution we must check), no keep-alive, and
        ``timeout`` as the budget of each whole request as well as of each phase."""
        return http.client(
            timeout_seconds=timeout,
            transport=self.transport(verify=verify, connection_seconds=timeout),
            trust_env=False,
            headers=headers,
        )


def _literal(host: str) -> list[IPAddress]:
    """An IP address written in the URL is its own resolution (no resolver involved)."""
    try:
        return [ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))]
    except ValueError:
        return []


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connection pool connects through ``SsrfGuard``.

    httpx has no public hook for the TCP connect; httpcore's ``network_backend`` is the hook,
    so the pool httpx builds is replaced by one with the guarded backend (tests pin this down
    for the httpx version in requirements.txt). Connections are not kept alive: every request
    resolves and checks again.
    """

    def __init__(
        self,
        guard: SsrfGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        connection_seconds: float | None = None,
    ) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(guard, connection_seconds),
        )


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check, then connect to one of the checked addresses (never to the name)."""

    def __init__(self, guard: SsrfGuard, connection_seconds: float | None) -> None:
        self._guard = guard
        self._seconds = connection_seconds
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = None if self._seconds is None else time.monotonic() + self._seconds
        ends_by = _ends_by.get()
        if ends_by is not None:
            deadline = ends_by if deadline is None else min(deadline, ends_by)
        try:
            addresses = self._guard.checked_addresses(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} did not resolve ({type(exc).__name__})") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_remaining(timeout, deadline, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return stream if deadline is None else _DeadlineStream(stream, deadline)
        # B101: addresses is never empty here
        assert failure is not None  # nosec B101
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressRefusedError("unix sockets are never reached", reason="unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _remaining(
    timeout: float | None, deadline: float | None, error: type[Exception]
) -> float | None:
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request took longer than its whole-request budget")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by one deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(
            max_bytes, _remaining(timeout, self._deadline, httpcore.ReadTimeout)
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(
            ssl_context,
            server_hostname=server_hostname,
            timeout=_remaining(timeout, self._deadline, httpcore.ConnectTimeout),
        )
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
