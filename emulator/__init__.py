"""Local emulator of OTC IAM + the TaurusDB (GaussDB for MySQL) v3 backup APIs over HTTP."""

from emulator.config import EmulatorConfig
from emulator.control import Emulator
from emulator.requestlog import RequestRecord

__all__ = ["Emulator", "EmulatorConfig", "RequestRecord"]
