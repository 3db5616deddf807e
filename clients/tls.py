"""One TLS context per process, shared by every HTTP client of the function.

Building a context loads the CA bundle: about 20 ms of a cold start and its own memory, for
each ``httpx.Client`` that builds one. The clients take this one instead, so a cold start
pays for it once; and it pays only when the first TLS handshake begins, not when the clients
are built: a process whose first connection is the IAM token's prefetch (main.py) loads it
there, in the background, and one that only ever speaks plain HTTP (a local emulator, a
sidecar) never does. It honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` as httpx itself does.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import threading
from typing import Any

import certifi

__all__ = ["shared_context"]


class _CertificatesOnFirstUse(ssl.SSLContext):
    """``ssl.create_default_context()``'s client context, its CA certificates loaded at the
    first handshake (``wrap_socket``/``wrap_bio``, which every TLS connection goes through)."""

    _lock = threading.Lock()
    _loaded = False

    def load_certificates(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                cafile, capath = _locations()
                self.load_verify_locations(cafile=cafile, capath=capath)
                self._loaded = True

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.load_certificates()
        return super().wrap_socket(sock, *args, **kwargs)

    def wrap_bio(
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: Any, **kwargs: Any
    ) -> ssl.SSLObject:
        self.load_certificates()
        return super().wrap_bio(incoming, outgoing, *args, **kwargs)


def _locations() -> tuple[str | None, str | None]:
    """Where the CA certificates are: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's."""
    if os.environ.get("SSL_CERT_FILE"):
        return os.environ["SSL_CERT_FILE"], None
    if os.environ.get("SSL_CERT_DIR"):
        return None, os.environ["SSL_CERT_DIR"]
    return certifi.where(), None


@functools.cache
def shared_context() -> ssl.SSLContext:
    # As httpx.create_ssl_context() (ssl.create_default_context(cafile=certifi.where())):
    # PROTOCOL_TLS_CLIENT verifies certificates and host names, TLS 1.2 at least.
    return _CertificatesOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)
