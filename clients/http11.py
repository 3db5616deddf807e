"""An httpx transport over the standard library's ``http.client``, for the API and IAM clients.

httpx's own transport (httpcore and h11) costs about 0.5 ms of CPU per request; a request
through ``http.client`` costs a fifth of that, and an event makes three. The clients keep
httpx's interface (``httpx.Client``, ``httpx.Auth``, its errors and timeouts), only the last
step changes: this transport sends the request httpx prepared and hands back the answer.
Importing it does not import httpcore either, which a cold start would pay for.

What it keeps from httpx's transport: keep-alive connections per host, reused newest first
and dropped after ``keepalive_expiry`` seconds idle or when the server has closed them (the
socket reads as ready while idle); the connect, read and write timeouts of each request;
TLS with the given context; httpx's exception types (``ConnectTimeout``, ``ReadTimeout``,
``ConnectError``, ``RemoteProtocolError``, …), so callers catch what they caught before.
What it leaves out: proxies (``clients.http.client`` uses httpx's own transport when the
environment names one), HTTP/2, and connection limits (a process has
at most one connection per worker thread in flight anyway).
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

__all__ = ["Http11Transport"]

_Key = tuple[str, str, int]


class Http11Transport(httpx.BaseTransport):
    """HTTP/1.1 over pooled ``http.client`` connections; thread-safe."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext, keepalive_expiry: float = 30.0, max_idle: int = 20
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: dict[_Key, list[tuple[http.client.HTTPConnection, float]]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}", request=request)
        key = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        connection = self._checkout(key)
        if connection is None:
            connection = self._connect(key, timeouts, request)
        try:
            response = self._exchange(connection, request, timeouts)
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._checkin(key, connection)
        return httpx.Response(
            status_code=response.status,
            headers=response.getheaders(),
            content=response.data,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": response.reason.encode("ascii", "replace"),
            },
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection, _ in connections:
                connection.close()

    # -- connections ------------------------------------------------------------------

    def _checkout(self, key: _Key) -> http.client.HTTPConnection | None:
        """The newest idle connection to ``key`` that is still open, if any."""
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection, since = idle.pop()
            if now - since < self._keepalive_expiry and not _closed(connection):
                return connection
            connection.close()

    def _checkin(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_idle:
                idle.append((connection, time.monotonic()))
                return
        connection.close()

    def _connect(
        self, key: _Key, timeouts: dict[str, float | None], request: httpx.Request
    ) -> http.client.HTTPConnection:
        scheme, host, port = key
        connect = timeouts.get("connect")
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=connect, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect)
        with _mapped(request, httpx.ConnectTimeout, httpx.ConnectError):
            connection.connect()
        return connection

    # -- one exchange -------------------------------------------------------------------

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> _Answer:
        sock = connection.sock
        body = request.read()
        with _mapped(request, httpx.WriteTimeout, httpx.WriteError):
            if sock is not None:
                sock.settimeout(timeouts.get("write"))
            connection.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                connection.putheader(name.decode("latin-1"), value.decode("latin-1"))
            connection.endheaders(body or None)
        with _mapped(request, httpx.ReadTimeout, httpx.ReadError):
            if sock is not None:
                sock.settimeout(timeouts.get("read"))
            response = connection.getresponse()
            data = response.read()
        return _Answer(
            response.status, response.reason, response.getheaders(), data, response.will_close
        )


class _Answer:
    __slots__ = ("data", "headers", "reason", "status", "will_close")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        data: bytes,
        will_close: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.data = data
        self.will_close = will_close

    def getheaders(self) -> list[tuple[str, str]]:
        return self.headers


def _closed(connection: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection the server has closed (or sent something unasked on)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@contextmanager
def _mapped(
    request: httpx.Request,
    timeout: type[httpx.TimeoutException],
    failure: type[httpx.TransportError],
) -> Iterator[None]:
    """The standard library's errors as httpx's, so callers catch what they always caught."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out", request=request) from exc
    except (http.client.RemoteDisconnected, http.client.IncompleteRead) as exc:
        raise httpx.RemoteProtocolError(
            str(exc) or "the server disconnected without a complete answer", request=request
        ) from exc
    except http.client.HTTPException as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except OSError as exc:
        raise failure(str(exc) or type(exc).__name__, request=request) from exc
