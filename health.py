"""Probe answers: ``GET /healthz`` (alive) and ``GET /readyz`` (configured), for every entry point.

Liveness never looks at the configuration or calls anything upstream: a process that answers
is alive, and restarting it would not fix a missing setting or a slow cloud. Readiness reports
whether the configuration is complete (credentials, a project, an inbound secret), naming the
missing variables, never their values, so a misconfigured revision never takes traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config import Settings
from errors import ConfigurationError

__all__ = ["INBOUND_SECRETS", "Answer", "liveness", "missing_settings", "probe", "readiness"]

Answer = tuple[int, dict[str, Any], dict[str, str]]
"""Status, JSON body and headers of a response."""

INBOUND_SECRETS = (
    "WEBHOOK_SECRET",
    "WEBHOOK_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "GITLAB_WEBHOOK_TOKEN",
)
"""Variables of which at least one must be set: without any, every event is refused."""

_NO_STORE = {"Cache-Control": "no-store"}


def probe(path: str, load_settings: Callable[[], Settings]) -> Answer | None:
    """The answer when ``path`` is a probe path, else ``None`` (the caller routes it on)."""
    normalized = path.rstrip("/")
    if normalized == "/healthz":
        return liveness()
    if normalized == "/readyz":
        return readiness(load_settings)
    return None


def liveness() -> Answer:
    return 200, {"status": "ok"}, dict(_NO_STORE)


def readiness(load_settings: Callable[[], Settings]) -> Answer:
    try:
        settings = load_settings()
    except ConfigurationError as exc:  # the message names variables, never values
        return 503, {"status": "not_ready", "invalid": exc.message}, dict(_NO_STORE)
    missing = missing_settings(settings)
    if missing:
        return 503, {"status": "not_ready", "missing": missing}, dict(_NO_STORE)
    return 200, {"status": "ready"}, dict(_NO_STORE)


def missing_settings(settings: Settings) -> list[str]:
    """What the function still lacks to serve an event, as variable names.

    The credentials are config's rule (``Settings.missing_credentials``, the same the API
    client is built by). Alternatives are joined with `` or ``.
    """
    missing = settings.missing_credentials()
    if not any(_is_set(getattr(settings, name.lower(), None)) for name in INBOUND_SECRETS):
        missing.append(" or ".join(INBOUND_SECRETS))
    if settings.callback_url and settings.callback_secret is None:
        missing.append("CALLBACK_SECRET")  # CALLBACK_URL is set, and callbacks are always signed
    return missing


def _is_set(value: object) -> bool:
    if value is None:
        return False
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return bool(str(text).strip())
