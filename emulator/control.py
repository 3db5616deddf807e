"""``Emulator``: start/stop the server in a background thread and steer it from tests."""

from __future__ import annotations

import ipaddress
import threading
from datetime import datetime
from types import TracebackType
from typing import Any

from emulator import admin
from emulator.config import EmulatorConfig, Timing
from emulator.faults import parse_fault
from emulator.requestlog import RequestLog, RequestRecord
from emulator.routes import App
from emulator.server import EmulatorServer
from emulator.state import COMPLETED, State


class Emulator:
    """IAM + TaurusDB on one port. ``Emulator(EmulatorConfig(port=0)).start()`` or ``with``."""

    def __init__(self, config: EmulatorConfig | None = None, *, access_log: bool = False) -> None:
        self.config = config or EmulatorConfig()
        self.state = State(self.config)
        self.log = RequestLog()
        self.app = App(self.state, self.log)
        self._access_log = access_log
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is None:
            server = EmulatorServer(
                (self.config.host, self.config.port), self.app, access_log=self._access_log
            )
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL: use as GAUSSDB_ENDPOINT, and with "/v3" appended as OS_AUTH_URL."""
        return f"http://{_reachable(self.config.host)}:{self.port}"

    # --- test controls --------------------------------------------------------------------
    def requests(self) -> list[RequestRecord]:
        return self.log.records()

    def reset(self) -> None:
        """Clear backups, jobs, tokens and the request log; re-seed instances and timings."""
        admin.reset(self.state, self.log)
        self.app.faults.clear()

    def inject(self, route: str, **fault: Any) -> None:
        """Arm a fault on ``route`` (see emulator/faults.py), e.g.
        ``emu.inject("create_backup", status=409, error_code="DBS.201205", times=2)``."""
        self.app.faults.add(parse_fault({"route": route, **fault}))

    def clear_faults(self) -> None:
        self.app.faults.clear()

    def revoke_tokens(self) -> None:
        self.state.revoke_tokens()

    def configure(
        self,
        *,
        backup_seconds: float | None = None,
        token_ttl_seconds: float | None = None,
        job_visible_after_seconds: float | None = None,
        clock_offset_seconds: float | None = None,
        ignore_time_filters: bool | None = None,
    ) -> Timing:
        """Change timings (see ``State.configure``): also the cloud's clock offset against
        this machine's, and whether GET /backups ignores its time filters."""
        return self.state.configure(
            backup_seconds=backup_seconds,
            token_ttl_seconds=token_ttl_seconds,
            job_visible_after_seconds=job_visible_after_seconds,
            clock_offset_seconds=clock_offset_seconds,
            ignore_time_filters=ignore_time_filters,
        )

    def put_instance(
        self,
        instance_id: str,
        *,
        status: str = "ACTIVE",
        name: str | None = None,
        fail_backups: bool = False,
    ) -> None:
        self.state.put_instance(instance_id, status=status, name=name, fail_backups=fail_backups)

    def add_backup(
        self,
        instance_id: str,
        *,
        backup_type: str = "auto",
        name: str | None = None,
        status: str = COMPLETED,
        begin_time: datetime | None = None,
        description: str = "",
    ) -> str:
        """Seed a backup (default: a COMPLETED automated one); returns its id."""
        return self.add_backups(
            instance_id,
            1,
            backup_type=backup_type,
            name=name,
            status=status,
            begin_time=begin_time,
            description=description,
        )[0]

    def add_backups(
        self,
        instance_id: str,
        count: int,
        *,
        backup_type: str = "manual",
        name: str | None = None,
        status: str = COMPLETED,
        begin_time: datetime | None = None,
        spacing_seconds: float = 3600.0,
        description: str = "",
    ) -> list[str]:
        """Seed ``count`` backups in one step, newest (``begin_time``, default now) first, each
        next one ``spacing_seconds`` older: a long history for tests and benchmarks. Over HTTP:
        ``POST /_emulator/backups`` with ``count`` and ``spacing_seconds``."""
        seeded = self.state.add_backup(
            instance_id,
            backup_type=backup_type,
            name=name,
            status=status,
            begin_time=begin_time,
            description=description,
            count=count,
            spacing_seconds=spacing_seconds,
        )
        return [backup.id for backup in seeded]

    def issue_token(self) -> str:
        """A valid project token without an IAM round trip."""
        return self.state.issue_token(self.config.project_id).value


def _reachable(host: str) -> str:
    """A wildcard bind address is not something a client can connect to; use loopback."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = not host
    return "127.0.0.1" if wildcard else host
