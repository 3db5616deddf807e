"""One TLS context per process, shared by every HTTP client of the function.

Building a context loads the CA bundle: about 20 ms of a cold start and its own memory, for
each ``httpx.Client`` that builds one. The clients take this one instead, so a cold start
pays for it once. It honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` as httpx itself does.
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["shared_context"]


@functools.cache
def shared_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
