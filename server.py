"""The function's HTTP server in the image and the FunctionGraph zip: waitress in front of the
functions-framework app, so a slow client costs a socket, never a request thread.

functions-framework's own server (gunicorn's gthread worker) reads headers and bodies inside
its request threads with no time limit, and takes no options to change that: eight connections
that stall mid-request hold all eight threads (``THREADS``) and nothing else is answered.
waitress reads each request whole (headers and body) in one event loop before a thread sees it.
On top of waitress's own idle timeout, a request must arrive whole within ``READ_SECONDS`` of
its first byte, so a client that drips a byte now and then is closed too. The app is the one
``functions-framework --target=…`` serves (``functions_framework.create_app``), which stays the
way to run the function locally.

    python -m server --target=webhook --port=8080   # flags default to FUNCTION_TARGET, HOST, PORT

Bodies over ``MAX_BODY_BYTES`` are refused by the server itself as the function refuses them
(``413 payload_too_large``, JSON), before they are read, and the connection is closed
(``Connection: close``): a client that reuses its connections opens a new one. On ``event`` the
function decides up to ``QUEUE_BODY_BYTES`` (it acknowledges what a queue would redeliver).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, cast

import functions_framework
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

__all__ = ["READ_SECONDS", "build", "main"]

SOURCE = Path(__file__).resolve().parent / "main.py"

READ_SECONDS = 10
"""A request's headers and body arrive within this many seconds of its first byte, and a
connection that sends nothing for this long is closed (checked every second)."""

GRACE_SECONDS = 10
"""On SIGTERM, requests being served get this long to finish; no new connection is taken."""

ANY_ADDRESS = "0.0.0.0"  # noqa: S104  # nosec B104 # in a container: reachable from outside
"""The default ``HOST``, as functions-framework's; ``bootstrap`` binds 127.0.0.1."""

QUEUE_BODY_BYTES = 16 * 1024 * 1024
"""On ``event``, bodies up to this size reach the app even over ``MAX_BODY_BYTES``: the app then
acknowledges them as failed records to a queue that redelivers every non-2xx answer (Pub/Sub
push; a 10 MB message is about 13.4 MB in its push envelope) instead of a 413 forever."""

_DEFAULT_MAX_BODY = 1024 * 1024  # config.Settings.max_body_bytes

_ERRORS = {
    400: ("invalid_request", "the request is not valid HTTP/1.1"),
    413: ("payload_too_large", "the body is larger than MAX_BODY_BYTES ({limit} bytes)"),
    431: ("headers_too_large", "the request's headers are too large"),
    500: ("internal_error", "unexpected error; the function's log has the details"),
    501: ("not_implemented", "the request's Transfer-Encoding is not supported"),
}


class _JsonErrorTask(ErrorTask):
    """waitress's own refusals (before the app runs) in the function's JSON shape."""

    def execute(self) -> None:
        error = cast(Any, self.request).error  # the stub types the request as an Error
        code = int(getattr(error, "code", 500))
        name, message = _ERRORS.get(code, ("error", str(getattr(error, "reason", "error"))))
        limit = self.channel.adj.max_request_body_size - 1  # waitress refuses at >= its size
        if code == 413 and limit != cast(_Server, self.channel.server).max_body_bytes:
            message = "the body is larger than {limit} bytes, the most the event entry point reads"
        body = json.dumps({"error": name, "message": message.format(limit=limit)}).encode()
        self.status = f"{code} {getattr(error, 'reason', 'Error')}"
        cast(list[tuple[str, str]], self.response_headers).append(
            ("Content-Type", "application/json")
        )
        self.set_close_on_finish()  # adds "Connection: close": the body was not read
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    """Remembers when the request being read began (``None`` between requests)."""

    error_task_class = _JsonErrorTask
    reading_since: float | None = None

    def received(self, data: bytes) -> bool:
        if data and self.request is None:
            self.reading_since = time.monotonic()
        done = super().received(data)
        if self.request is None:
            self.reading_since = None
        return done


class _Server(TcpWSGIServer):
    channel_class = _Channel
    max_body_bytes = _DEFAULT_MAX_BODY  # the function's MAX_BODY_BYTES

    def maintenance(self, now: float) -> None:
        """waitress's idle check, then: a request still incomplete after READ_SECONDS."""
        super().maintenance(now)  # type: ignore[arg-type]  # waitress passes time.time()
        cutoff = time.monotonic() - READ_SECONDS
        channels = cast(dict[int, _Channel], self.active_channels)
        for channel in list(channels.values()):
            since = channel.reading_since
            if since is not None and since < cutoff and not channel.requests:
                channel.will_close = True


def build(
    app: Callable[..., Iterable[bytes]],
    *,
    host: str,
    port: int,
    threads: int,
    max_body_bytes: int,
    queue: bool = False,
) -> _Server:
    """A bound server for ``app``; ``serve(server)`` runs it. ``queue``: the ``event`` entry
    point, which reads up to ``QUEUE_BODY_BYTES`` whatever ``MAX_BODY_BYTES`` says."""
    read_at_most = max(max_body_bytes, QUEUE_BODY_BYTES) if queue else max_body_bytes
    adjustments = Adjustments(
        host=host,
        port=port,
        threads=threads,
        channel_timeout=READ_SECONDS,
        cleanup_interval=1,
        max_request_body_size=read_at_most + 1,  # waitress refuses at >= this
        connection_limit=1000,
        asyncore_use_poll=True,  # select() stops at 1024 descriptors
        ident="",  # no Server header
        clear_untrusted_proxy_headers=False,  # no proxy is trusted; headers reach the app as sent
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)
    server = _Server(app, map={}, dispatcher=dispatcher, adj=adjustments)
    server.max_body_bytes = max_body_bytes
    return server


def serve(server: _Server) -> None:
    """Run until SIGTERM or SIGINT, then let the requests in flight finish (``GRACE_SECONDS``)."""
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    socket_map = cast(dict[int, Any], getattr(server, "_map"))  # noqa: B009  # not in the stub
    while not stopping:
        wasyncore.loop(timeout=1.0, map=socket_map, use_poll=True, count=1)
    server.accepting = False
    channels = cast(dict[int, _Channel], server.active_channels)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(c.requests for c in channels.values()):
        wasyncore.loop(timeout=0.1, map=socket_map, use_poll=True, count=1)
    server.task_dispatcher.shutdown(timeout=1)
    wasyncore.close_all(socket_map)


def _max_body_bytes() -> int:
    """``MAX_BODY_BYTES`` as the function reads it; a bad value is the function's to report."""
    try:
        value = int(os.environ.get("MAX_BODY_BYTES", _DEFAULT_MAX_BODY))
    except ValueError:
        return _DEFAULT_MAX_BODY
    return value if value > 0 else _DEFAULT_MAX_BODY


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m server", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--target", default=os.environ.get("FUNCTION_TARGET", "webhook"))
    parser.add_argument("--source", default=str(SOURCE))
    parser.add_argument("--host", default=os.environ.get("HOST", ANY_ADDRESS))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    # functions-framework's default, and template.yaml's THREADS.
    threads = int(os.environ.get("THREADS", (os.cpu_count() or 1) * 4))
    app = functions_framework.create_app(target=args.target, source=args.source)  # type: ignore[no-untyped-call]
    # The function's start hook (main.prefetch: the IAM token and the API connection, fetched
    # in the background while the server starts), called once, as functions-framework's own
    # server calls it in each worker it forks. A source without one (bench/floor) has none.
    start = getattr(sys.modules.get(Path(args.source).stem), "prefetch", None)
    if callable(start):
        start()
    server = build(
        app,
        host=args.host,
        port=args.port,
        threads=threads,
        max_body_bytes=_max_body_bytes(),
        queue=args.target == "event",
    )
    serve(server)


if __name__ == "__main__":
    main()
