"""What the function builds once per process: the settings, the services, the SMN client.

``main.py`` keeps one ``Runtime``; functions-framework loads ``main.py`` afresh for each app it
creates (the tests create many), so each app gets its own. Everything is built on first use,
under a lock, and kept: the API client's connections and IAM token then survive between
events. ``prefetch`` builds it all ahead of the first event, in a background thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

import logs
from clients import retry
from clients.auth import AkSkAuth, TokenAuth
from clients.callback import CallbackSender
from clients.smn import SmnClient
from clients.taurusdb import TaurusDBClient
from config import AkSkCredentials, Settings, load_settings
from errors import PredeployError
from handlers.services import Services

__all__ = ["Runtime", "api_client"]

_log = logging.getLogger("predeploy.prefetch")
_PREFETCH_FAILED = "prefetch failed (%s); the first event fetches on demand"


class Runtime:
    """The process's settings and services, built once, on first use; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._settings: Settings | None = None
        self._services: Services | None = None
        self._smn: SmnClient | None = None
        self.redact = logs.Redactor(())
        """Removes the configured secrets from a text (none until the settings are loaded)."""

    def settings(self) -> Settings:
        """Read once; the log then redacts every configured secret."""
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    settings = load_settings()
                    secrets = [*settings.secret_values(), settings.os_access_key or ""]
                    self.redact = logs.Redactor(secrets)
                    logs.configure(settings.log_level, secrets)
                    retry.log_retries()
                    self._settings = settings
        return self._settings

    def services(self) -> Services:
        """One API client and one callback sender per process."""
        if self._services is None:
            with self._lock:
                if self._services is None:
                    settings = self.settings()
                    self._services = Services(
                        settings=settings,
                        taurusdb=api_client(settings),
                        callbacks=CallbackSender(
                            secret=settings.secrets("callback_secret"),
                            allowed_hosts=settings.callback_allowed_hosts,
                            timeout=settings.callback_timeout_seconds,
                        ),
                        smn=self.smn(),
                    )
        return self._services

    def smn(self) -> SmnClient:
        """The SMN certificate provider and confirmer, its URL policy from the settings.

        Apart from the services: verifying an SMN message needs it, the API client not yet.
        """
        if self._smn is None:
            with self._lock:
                if self._smn is None:
                    settings = self.settings()
                    endpoint = urlsplit(settings.smn_endpoint or "").hostname
                    self._smn = SmnClient(
                        lambda url: _smn_url_refusal(url, settings),
                        private_hosts=[endpoint] if endpoint else [],
                        timeout=settings.api_timeout_seconds,
                    )
        return self._smn

    def prefetch(self) -> None:
        """Start building the services and fetching the IAM token and an API connection, in
        a background thread, ahead of the first event (which would otherwise wait for IAM
        before its first API call). Whatever fails there is only logged: the first event
        builds, fetches and connects again on its own, and reports its own failures."""
        threading.Thread(target=self._prefetch, name="prefetch", daemon=True).start()

    def _prefetch(self) -> None:
        try:
            self.services().taurusdb.prefetch()
        except PredeployError as exc:
            _log.warning(_PREFETCH_FAILED, self.redact(exc.message))
        except Exception as exc:  # never let a background thread die with a traceback
            _log.warning(_PREFETCH_FAILED, type(exc).__name__)


def api_client(settings: Settings, transport: httpx.BaseTransport | None = None) -> TaurusDBClient:
    """The API client for ``settings.credentials()``: config decides the method (AK/SK signing
    or an IAM token) and what is missing (``ConfigurationError``); this builds the auth."""
    credentials = settings.credentials()
    timeout = settings.api_timeout_seconds
    auth: AkSkAuth | TokenAuth
    project_id: str | Callable[[], str]
    if isinstance(credentials, AkSkCredentials):
        auth = AkSkAuth(
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            project_id=credentials.project_id,
            security_token=credentials.security_token,
        )
        project_id = credentials.project_id
    else:
        auth = TokenAuth(
            auth_url=credentials.auth_url,
            username=credentials.username,
            password=credentials.password,
            domain_name=credentials.domain_name,
            project_id=credentials.project_id,
            project_name=credentials.project_name,
            timeout=timeout,
            transport=transport,
        )
        project_id = credentials.project_id or auth.project_id
    return TaurusDBClient(
        endpoint=settings.api_endpoint,
        auth=auth,
        project_id=project_id,
        timeout=timeout,
        transport=transport,
    )


def _smn_url_refusal(url: str, settings: Settings) -> str | None:
    from events import smn  # loaded with the first SMN message (and cryptography with it)

    return smn.url_refusal(url, settings)
