"""HTTP/1.1 transport: turns socket traffic into ``Request`` objects for ``App`` and back.

Every answer is JSON with Content-Type application/json and Content-Length, so keep-alive
connections (httpx pools them) work. Open connections are tracked so stop() can cut them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qsl, unquote, urlsplit

from emulator import rules
from emulator.faults import DropConnection
from emulator.routes import App
from emulator.wire import Request, Response

MAX_BODY_BYTES = 1024 * 1024


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otc-emulator"
    # http.server writes a response's head and body separately; with Nagle's algorithm the
    # body would wait ~40 ms for the client's delayed ACK on every call.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        app = cast(EmulatorServer, self.server).app
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(split.path),
            query=_first_values(split.query),
            headers=_headers(self),
            body=b"",
            base_url=self._base_url(),
            raw_path=split.path,
            raw_query=split.query,
        )
        try:
            body = self._read_body()
        except rules.ApiError as exc:
            self.close_connection = True
            self._send(app.reject(request, exc))
            return
        try:
            response = app.handle(replace(request, body=body))
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit():
            raise rules.BAD_REQUEST.error("Invalid Content-Length.")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise rules.REQUEST_TOO_LARGE.error()
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise rules.BAD_REQUEST.error("Invalid chunk size.") from None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise rules.REQUEST_TOO_LARGE.error()
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, response: Response) -> None:
        payload = json.dumps(response.body).encode() if response.raw is None else response.raw
        headers = {"Content-Type": "application/json", **response.headers}
        self.send_response(response.status)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        if not host:
            address, port = self.connection.getsockname()[:2]
            host = f"{address}:{port}"
        return f"http://{host}"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Transport-level failures (bad request line, unknown method) answer JSON too."""
        self.close_connection = True
        request_id = uuid.uuid4().hex
        body = {
            "error_code": "APIGW.0201",
            "error_msg": message or "Bad request.",
            "request_id": request_id,
        }
        payload = json.dumps(body).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", request_id)
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        if cast(EmulatorServer, self.server).access_log:
            sys.stderr.write(f"emulator: {self.address_string()} {format % args}\n")


def _first_values(query: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(key, value)
    return values


def _headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in handler.headers.items():
        values.setdefault(name.lower(), value)
    return values
