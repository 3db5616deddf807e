"""Test helpers: secrets, signing the way a sender does, the function's environment (and the
factories of conftest.py's fixtures), the app's client, the emulator's records."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import httpx
import pytest
from _pytest.fixtures import FixtureFunctionDefinition
from _pytest.monkeypatch import MonkeyPatch
from flask.testing import FlaskClient
from functions_framework import create_app
from standardwebhooks import Webhook
from werkzeug.test import TestResponse

from config import SECRET_FILE_FIELDS, Settings
from emulator import Emulator, EmulatorConfig
from emulator.receiver import CallbackReceiver
from emulator.requestlog import RequestRecord

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "events" / "samples"

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"inbound-test-secret-0123456789ab").decode()
CALLBACK_SECRET = "whsec_" + base64.b64encode(b"callback-test-secret-0123456789a").decode()
WEBHOOK_TOKEN = "bearer-test-token-6f1c2d9e8a7b"
INSTANCE = "07033b125fd94a8a96896f8bcfee6ddain07"
PROJECT_ID = "619d3e78f61b4be68bc5aa0b59edcf7b"


def function_env(api_url: str) -> dict[str, str]:
    """The settings a user of the emulator would set (docs/configuration.md)."""
    return {
        **EmulatorConfig().function_env(api_url),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        # The samples carry fixed send times (2026-11-27): a week later they would be refused
        # as too old. Tests of the sources serve them whatever their age; tests of the window
        # set IDEMPOTENCY_WINDOW_DAYS themselves.
        "IDEMPOTENCY_WINDOW_DAYS": "3650",
    }


def server_env(api_url: str, **overrides: str | None) -> dict[str, str]:
    """A real server process's environment: this process's, ``function_env(api_url)`` and
    ``overrides`` (``None`` leaves a name out, whatever this process has)."""
    merged = {**os.environ, **function_env(api_url), **overrides}
    return {name: value for name, value in merged.items() if value is not None}


def sign(
    body: bytes,
    secret: str = WEBHOOK_SECRET,
    msg_id: str = "msg_2b1f0c",
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, as a signing sender makes them."""
    when = timestamp or datetime.now(tz=UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
    }


def event(**fields: Any) -> bytes:
    """A generic pre-deploy event; ``None`` values drop the field."""
    document: dict[str, Any] = {
        "event": "pre-deploy",
        "id": "deploy-4711",
        "instance_id": INSTANCE,
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def load_sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def backups_on(emu: Emulator, instance_id: str = INSTANCE) -> list[dict[str, Any]]:
    """The instance's manual backups as the API lists them (newest first)."""
    response = httpx.get(
        f"{emu.url}/v3/{PROJECT_ID}/backups",
        params={"instance_id": instance_id, "backup_type": "manual"},
        headers={"X-Auth-Token": emu.issue_token()},
    )
    response.raise_for_status()
    backups: list[dict[str, Any]] = response.json()["backups"]
    return backups


START_UP = (("POST", "/v3/auth/tokens"), ("HEAD", "/"))
"""What a real server process sends as its worker starts, before and whatever any event: the
IAM token and the API connection it prefetches (main.py, docs/operations.md "Start-up")."""


def event_requests(emu: Emulator) -> list[RequestRecord]:
    """The emulator's request log without a real server's start-up prefetch.

    A server that outlives the per-test reset (a module-scoped fixture) may have its start-up
    requests land in a test's log; they are not the test's event's doing.
    """
    return [r for r in emu.requests() if (r.method, r.path) not in START_UP]


def make_client(target: str = "webhook") -> FlaskClient:
    """A fresh app for ``target``: main.py is loaded anew and reads the environment as set now."""
    app = create_app(target=target, source=str(ROOT / "main.py"))  # type: ignore[no-untyped-call]
    return cast(FlaskClient, app.test_client())


def js(response: TestResponse) -> Any:
    return response.get_json()


PUBLIC_IP = "93.184.216.34"
"""A public address for names in tests; nothing ever connects to it (it is refused or faked)."""


class FakeDNS:
    """A resolver for ``SsrfGuard``: fixed answers per name, a log of every question.

    A name maps to one answer (used every time) or to a list of answers, one per lookup in
    turn (the last repeats), which is how DNS rebinding looks from the client.
    """

    def __init__(self, answers: dict[str, str | list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[Any]:
        import ipaddress
        import socket

        self.lookups.append(host)
        answer = self.answers.get(host.lower().rstrip("."))
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if isinstance(answer, str):
            return [ipaddress.ip_address(answer)]
        seen = sum(1 for name in self.lookups if name == host) - 1
        return [ipaddress.ip_address(a) for a in answer[min(seen, len(answer) - 1)]]


def config_variables() -> list[str]:
    """Every variable the settings read: the fields, the alias, the secrets' ``_FILE`` twins."""
    names = {name.upper() for name in Settings.model_fields} | {"OS_DOMAIN_NAME"}
    return sorted(names | {f"{name.upper()}_FILE" for name in SECRET_FILE_FIELDS})


def clear_settings(monkeypatch: MonkeyPatch, **values: str) -> None:
    """Exactly ``values`` for this test: every other variable the settings read is unset,
    whatever the developer's shell exports."""
    for name in config_variables():
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def bare_settings(monkeypatch: MonkeyPatch, **values: str) -> Settings:
    """Settings read from exactly ``values`` (``clear_settings``)."""
    clear_settings(monkeypatch, **values)
    return Settings()


def use_env(monkeypatch: MonkeyPatch, api_url: str, **overrides: str | None) -> dict[str, str]:
    """Set ``function_env(api_url)`` with ``overrides`` for this test; returns what was set.

    An override of ``None`` unsets the name (whether ``function_env`` has it or the shell does).
    """
    values: dict[str, str] = {}
    for name, value in {**function_env(api_url), **overrides}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
            values[name] = value
    return values


class SetEnv(Protocol):
    """The ``set_env`` fixture (conftest.py): ``use_env`` bound to this test and the emulator."""

    def __call__(self, **overrides: str | None) -> dict[str, str]: ...


def env_fixture(**overrides: str | None) -> FixtureFunctionDefinition:
    """An ``env`` fixture for a module whose tests all need ``overrides``.

    ``env = env_fixture(RETENTION_KEEP="2")`` at module level; conftest.py's ``env`` is
    ``env_fixture()``, the function's environment as a user of the emulator sets it.
    """

    @pytest.fixture(name="env")
    def env(set_env: SetEnv) -> dict[str, str]:
        return set_env(**overrides)

    return env


def receiver_per_module() -> FixtureFunctionDefinition:
    """A ``receiver`` fixture sharing one receiver per module (stopping one takes a while),
    emptied for each test: ``receiver = receiver_per_module()`` at module level."""

    @pytest.fixture(name="receiver")
    def receiver(_module_receiver: CallbackReceiver) -> CallbackReceiver:
        _module_receiver.clear()
        _module_receiver.status = 200
        return _module_receiver

    return receiver


def client_fixture(target: str = "webhook") -> FixtureFunctionDefinition:
    """A ``client`` fixture: ``make_client(target)`` once the module's ``env`` is set.

    conftest.py's ``client`` is ``client_fixture()``; a module served by the event entry point
    says ``client = client_fixture("event")``.
    """

    @pytest.fixture(name="client")
    def client(env: dict[str, str]) -> FlaskClient:
        return make_client(target)

    return client


def deliver(client: FlaskClient, body: bytes) -> TestResponse:
    """POST ``body`` signed the way a sender signs it (Standard Webhooks)."""
    return client.post("/", data=body, headers=sign(body))


def _create_requests(emu: Emulator) -> list[RequestRecord]:
    return [r for r in emu.requests() if r.path.endswith("/backups/create")]


def creates(emu: Emulator) -> list[dict[str, Any]]:
    """The bodies of the create requests the emulator received, in order (``len()`` counts)."""
    return [r.body for r in _create_requests(emu)]


def successful_creates(emu: Emulator) -> int:
    """How many of those creates the API accepted (201): a refused or failed one is not a backup."""
    return sum(1 for r in _create_requests(emu) if r.status == 201)
