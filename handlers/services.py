"""What a handler may use: the settings and the clients, built once per process (``runtime.py``).

Handlers take it as an argument and never build a client themselves, so a test can run them
against the emulator with the very objects a deployment uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from clients.callback import CallbackSender
from clients.smn import SmnClient
from clients.taurusdb import TaurusDBClient
from config import Settings

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    """The settings, the API client and the callback sender; the SMN client where SMN can call."""

    settings: Settings
    taurusdb: TaurusDBClient
    callbacks: CallbackSender
    smn: SmnClient | None = None
    """Confirms SMN subscriptions; ``None`` where no SMN message can arrive."""
