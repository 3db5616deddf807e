"""The one way the function builds an outbound HTTP client, so every client agrees on the rules.

Every ``httpx.Client`` of the function (the TaurusDB API, IAM, SMN, callbacks) comes from
``client``: the same ``User-Agent``, the connect-timeout cap, the process's one TLS context
(``clients.tls``), the same pool limits, and no redirects followed (a redirect is either a
misconfigured endpoint or a sender-chosen URL trying to move us elsewhere). What differs
between clients is passed in: the base URL and auth of the API, a guarded transport for
sender-chosen URLs, extra default headers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from clients.http11 import Http11Transport
from clients.tls import shared_context

__all__ = [
    "CONNECT_TIMEOUT_MAX",
    "LIMITS",
    "MESSAGE_MAX",
    "USER_AGENT",
    "capped",
    "client",
    "default_transport",
    "timeout",
]

USER_AGENT = "predeploy-backup/0.1"

#: Connecting should be quick: a connect that takes longer than this will not get better.
CONNECT_TIMEOUT_MAX = 3.0

#: Idle connections stay open longer than httpx's 5 s, so that events a few seconds apart
#: reuse them instead of paying a new TCP and TLS handshake; 30 s stays below the usual 60 s
#: idle timeout of load balancers and gateways.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)

_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")

#: The longest piece of a server's answer that is quoted in one of our messages.
MESSAGE_MAX = 200


def timeout(seconds: float) -> httpx.Timeout:
    """``seconds`` for each phase, connecting capped at ``CONNECT_TIMEOUT_MAX``.

    httpx has no overall deadline: each phase (connect, each read/write, pool wait) gets its
    own limit; callers that need a whole-request budget pass less, per request.
    """
    return httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT_MAX, seconds))


def client(
    *,
    timeout_seconds: float,
    base_url: str = "",
    auth: httpx.Auth | None = None,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    trust_env: bool = True,
) -> httpx.Client:
    """An ``httpx.Client`` with the function's rules; ``headers`` add to the ``User-Agent``.

    ``transport`` replaces the default (``default_transport``): the SSRF guard's, or a test's;
    ``trust_env=False`` ignores proxy settings from the environment (a proxy would resolve
    names we must check).
    """
    return httpx.Client(
        base_url=base_url,
        auth=auth,
        timeout=timeout(timeout_seconds),
        limits=LIMITS,
        verify=shared_context(),
        transport=transport if transport is not None else default_transport(),
        trust_env=trust_env,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
    )


def default_transport() -> httpx.BaseTransport | None:
    """``clients.http11``'s transport with the shared TLS context and ``LIMITS``' keep-alive, or
    ``None`` (httpx's own, which honours it) when the environment names a proxy."""
    if any(name.lower() in _PROXY_VARIABLES and value for name, value in os.environ.items()):
        return None
    expiry = LIMITS.keepalive_expiry
    return Http11Transport(
        ssl_context=shared_context(), keepalive_expiry=30.0 if expiry is None else expiry
    )


def capped(text: str, limit: int = MESSAGE_MAX) -> str:
    """A server's text as we quote it: whitespace collapsed, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
