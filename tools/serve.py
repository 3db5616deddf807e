"""Run the function under a real server on a free 127.0.0.1 port.

For the demo, the tests and local work: ``with function_server(env) as url: ...``. By default
the server is the one the image and ``bootstrap`` start (``python -m server``: waitress in front
of the functions-framework app); ``launcher="functions-framework"`` starts
``functions-framework --target=…`` instead, the plain local way.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess  # nosec B404 # starts our own function locally
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Literal

import httpx

__all__ = ["LAUNCHERS", "free_port", "function_server", "stop"]

ROOT = Path(__file__).resolve().parent.parent

Launcher = Literal["image", "functions-framework"]
LAUNCHERS: dict[str, str] = {"image": "server", "functions-framework": "functions_framework"}
"""Each launcher's module: ``python -m MODULE --target=… --source=… --host=… --port=…``."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def function_server(
    env: Mapping[str, str],
    *,
    target: str = "webhook",
    start_timeout: float = 30.0,
    launcher: Launcher = "image",
    log: IO[str] | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """The URL (``http://127.0.0.1:PORT/``) of a server running ``main.py``'s ``target``.

    ``log``: a file that gets the server's log lines (stderr; ``sys.stderr``: this terminal);
    otherwise they are kept only to report a failed start. ``port``: a free one unless given.
    """
    port = port or free_port()
    process = subprocess.Popen(  # noqa: S603  # nosec B603 # our own interpreter and module
        [
            sys.executable,
            "-m",
            LAUNCHERS[launcher],
            f"--target={target}",
            f"--source={ROOT / 'main.py'}",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                error = process.stderr.read() if process.stderr else "(see its log above)"
                raise RuntimeError(f"the {target} entry point did not start:\n{error}")
            try:
                httpx.get(url + "healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the {target} entry point gave no answer in {start_timeout:g} s"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Ask a process we started to end; kill it if it has not within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
