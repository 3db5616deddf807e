"""A local callback receiver: what a pipeline's webhook endpoint does with our callbacks.

It verifies each callback the way docs/responses.md tells receivers to (``standardwebhooks`` with
``CALLBACK_SECRET``), records it, and answers with a status the test or demo chooses. Used by
the demo and the tests, over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

__all__ = ["CallbackReceiver", "ReceivedCallback"]


@dataclass(frozen=True)
class ReceivedCallback:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any


class CallbackReceiver:
    """``with CallbackReceiver(secret) as receiver: … receiver.wait_for(1)``."""

    def __init__(
        self,
        secret: str | None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_receive: Callable[[ReceivedCallback], None] | None = None,
    ) -> None:
        self._webhook = Webhook(secret) if secret else None
        self._on_receive = on_receive  # e.g. ./dev.sh serve prints each callback as it arrives
        self.status = 200
        self.delay_seconds = 0.0
        self.next_statuses: list[int] = []  # answered first, in order, before ``status``
        self._received: list[ReceivedCallback] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def received(self) -> list[ReceivedCallback]:
        with self._changed:
            return list(self._received)

    def clear(self) -> None:
        with self._changed:
            self._received.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedCallback]:
        """The first ``count`` callbacks, waiting up to ``timeout`` seconds for them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self._received)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        verified = False
        if self._webhook is not None:
            try:
                self._webhook.verify(body.decode(), headers, json_parse=False)
                verified = True
            except Exception:  # noqa: S110 # nosec B110
                pass  # an unverifiable callback is recorded as such
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        received = ReceivedCallback(path, headers, body, verified, payload)
        with self._changed:
            self._received.append(received)
            self._changed.notify_all()
            status = self.next_statuses.pop(0) if self.next_statuses else self.status
        if self._on_receive is not None:
            self._on_receive(received)
        return status if verified else 401

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._record(self.path, headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
