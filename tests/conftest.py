"""Shared fixtures: one emulator per test session, reset before every test that uses it.

The tests are laid out by kind: ``unit/`` (one module at a time, against the emulator's real
sockets where it calls out), ``functional/`` (the function through
``functions_framework.create_app(...).test_client()``), ``e2e/`` (real server processes:
the image's server, the local stack, the pipeline client). ``helpers.py`` holds what several
of them share (the environment, the app's client, signing, the emulator's records).

The function's environment and its client are fixtures here, built by factories in
``helpers.py``: ``env`` (``helpers.function_env`` for the emulator), ``client`` (the webhook
entry point's app, made after ``env``) and ``set_env`` (the same environment with overrides, in a
test; ``None`` unsets a name). A module that needs other settings for all its tests says so in
one line, ``env = env_fixture(RETENTION_KEEP="2")`` or ``client = client_fixture("event")``;
one that needs more (instances, a receiver) writes its ``env`` on ``set_env``. ``bare_env`` is
no configuration at all. A real server process gets ``helpers.server_env(emu.url, ...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from emulator import Emulator, EmulatorConfig
from emulator.receiver import CallbackReceiver
from helpers import (
    CALLBACK_SECRET,
    SetEnv,
    clear_settings,
    client_fixture,
    env_fixture,
    use_env,
)


@pytest.fixture(scope="session")
def _emulator_process() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(port=0, backup_seconds=0.3)) as emu:
        yield emu


@pytest.fixture
def emu(_emulator_process: Emulator) -> Emulator:
    """The running emulator (real HTTP on 127.0.0.1), with a clean state and request log."""
    _emulator_process.reset()
    return _emulator_process


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A callback receiver on 127.0.0.1 that verifies with ``CALLBACK_SECRET``."""
    with CallbackReceiver(CALLBACK_SECRET) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def _module_receiver() -> Iterator[CallbackReceiver]:
    """For ``helpers.receiver_per_module``: one receiver for a whole module."""
    with CallbackReceiver(CALLBACK_SECRET) as receiver:
        yield receiver


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration at all, whatever the developer's shell exports (``helpers.clear_settings``).

    A module whose every test starts from nothing says
    ``pytestmark = pytest.mark.usefixtures("bare_env")``.
    """
    clear_settings(monkeypatch)


@pytest.fixture
def set_env(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> SetEnv:
    """``set_env(NAME="value", OTHER=None)``: the function's environment for this test with those
    overrides (``None`` unsets); returns what it set. Each call starts again from the base."""
    return partial(use_env, monkeypatch, emu.url)


env = env_fixture()
client = client_fixture()
