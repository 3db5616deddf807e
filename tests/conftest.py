"""Shared fixtures: one emulator per test session, reset before every test that uses it.

The tests are laid out by kind: ``unit/`` (one module at a time, against the emulator's real
sockets where it calls out), ``functional/`` (the function through
``functions_framework.create_app(...).test_client()``), ``e2e/`` (real server processes:
the image's server, the local stack, the pipeline client). ``helpers.py`` holds what several
of them share (the environment, the app's client, signing, the emulator's records).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import Emulator, EmulatorConfig
from emulator.receiver import CallbackReceiver
from helpers import CALLBACK_SECRET


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
