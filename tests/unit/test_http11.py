"""The API and IAM clients' transport over ``http.client`` (clients/http11.py).

Against real sockets: a small HTTP/1.1 server here (it counts connections and can misbehave
in the ways a transport must survive), and TLS with a test CA (trustme). The emulator-based
tests run every API and IAM call through this transport as well.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from clients.http import default_transport
from clients.http11 import Http11Transport
from clients.tls import shared_context


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.command, self.path, dict(self.headers.items())))
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path == "/gzip":
            body = gzip.compress(b'{"zipped": true}')
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"a": ', b"1}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/close":
            body = b"bye"
            self.send_response(200)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        received = self.rfile.read(length)
        self.server.requests.append((self.command, self.path, dict(self.headers.items())))
        self.send_response(201)
        self.send_header("Content-Length", str(len(received)))
        self.end_headers()
        self.wfile.write(received)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.context = context

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        self.connections += 1
        if self.context is not None:
            sock = self.context.wrap_socket(sock, server_side=True)
        return sock, address


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def _client(server: _Server, transport: httpx.BaseTransport, scheme: str = "http") -> httpx.Client:
    port = server.server_address[1]
    return httpx.Client(base_url=f"{scheme}://localhost:{port}", transport=transport, timeout=5)


def test_keep_alive_connection_is_reused_and_the_request_arrives_as_sent(
    server: _Server,
) -> None:
    with _client(server, Http11Transport(ssl_context=shared_context())) as client:
        first = client.get("/a", params={"begin_time": "2026-11-29T10:00:00+0100"})
        second = client.post("/b", json={"name": "backup-1"}, headers={"X-Auth-Token": "t"})
    assert first.status_code == 200 and first.json() == {"ok": True}
    assert second.status_code == 201 and second.json() == {"name": "backup-1"}
    assert server.connections == 1
    (method, path, headers), (post, _, post_headers) = server.requests
    assert (method, path) == ("GET", "/a?begin_time=2026-11-29T10%3A00%3A00%2B0100")
    assert headers["Host"] == f"localhost:{server.server_address[1]}"
    assert post == "POST" and post_headers["X-Auth-Token"] == "t"
    assert post_headers["Content-Type"] == "application/json"


def test_gzip_and_chunked_answers_are_read_whole(server: _Server) -> None:
    with _client(server, Http11Transport(ssl_context=shared_context())) as client:
        assert client.get("/gzip").json() == {"zipped": True}
        assert client.get("/chunked").json() == {"a": 1}
    assert server.connections == 1


def test_connection_the_server_closes_is_not_reused(server: _Server) -> None:
    with _client(server, Http11Transport(ssl_context=shared_context())) as client:
        assert client.get("/close").text == "bye"
        assert client.get("/a").status_code == 200
    assert server.connections == 2


def test_idle_connection_past_its_expiry_is_replaced(server: _Server) -> None:
    transport = Http11Transport(ssl_context=shared_context(), keepalive_expiry=0.05)
    with _client(server, transport) as client:
        client.get("/a")
        time.sleep(0.1)
        client.get("/a")
    assert server.connections == 2


def test_read_timeout_is_httpx_read_timeout(server: _Server) -> None:
    with _client(server, Http11Transport(ssl_context=shared_context())) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get("/slow", timeout=httpx.Timeout(5, read=0.2))
        assert client.get("/a").status_code == 200  # the broken connection was dropped


def test_refused_connection_is_httpx_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = Http11Transport(ssl_context=shared_context())
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"http://127.0.0.1:{port}/")


def test_a_server_that_hangs_up_without_answering_is_a_protocol_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def hang_up() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.close()

        threading.Thread(target=hang_up, daemon=True).start()
        transport = Http11Transport(ssl_context=shared_context())
        with (
            httpx.Client(transport=transport) as client,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            client.get(f"http://127.0.0.1:{port}/")


def test_tls_verifies_the_server_with_the_given_context() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    running = _Server(server_context)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    try:
        trusting = ssl.create_default_context()
        authority.configure_trust(trusting)
        with _client(running, Http11Transport(ssl_context=trusting), "https") as client:
            assert client.get("/a").json() == {"ok": True}
            assert client.get("/a").status_code == 200
        assert running.connections == 1
        # The shared context trusts the public CAs only: this server's certificate is refused.
        with (
            _client(running, Http11Transport(ssl_context=shared_context()), "https") as client,
            pytest.raises(httpx.ConnectError),
        ):
            client.get("/a")
    finally:
        running.shutdown()
        running.server_close()


def test_a_proxy_in_the_environment_keeps_httpx_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(default_transport(), Http11Transport)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert default_transport() is None
