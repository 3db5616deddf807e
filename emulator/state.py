"""The fake cloud's data and its time-driven state machines, behind one lock.

Transitions are evaluated lazily: every public method first calls ``_advance()``, which moves
each BUILDING backup whose time is up to COMPLETED (or FAILED) together with its job. So there
are no timer threads, and what a client sees depends only on the monotonic clock.

Methods return copies, so callers can shape responses without holding the lock.
"""

from __future__ import annotations

import copy
import itertools
import math
import secrets
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from emulator import rules
from emulator.clock import Clock
from emulator.config import EmulatorConfig, Timing

BUILDING = "BUILDING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
AVAILABLE = "AVAILABLE"
BACKUP_STATUSES = (BUILDING, COMPLETED, FAILED, AVAILABLE)

JOB_RUNNING = "Running"
JOB_COMPLETED = "Completed"
JOB_FAILED = "Failed"
#: Undocumented for manual backups; chosen to look like the documented job names.
BACKUP_JOB_NAME = "CreateGaussDBforMySQLBackup"
FAIL_REASON = "Backup failed: the backup lock could not be obtained on the DB instance."
BACKUP_SIZE_MB = 2048
#: Most backups one admin call may seed.
MAX_SEEDED = 100_000


@dataclass
class Instance:
    id: str
    name: str
    status: str = "ACTIVE"
    fail_backups: bool = False
    created: datetime = field(default_factory=Clock().now)
    updated: datetime = field(default_factory=Clock().now)


@dataclass(frozen=True)
class InstanceInfo:
    """An instance as clients see it: status reflects a running backup."""

    instance: Instance
    status: str
    backup_used_space_gb: float


@dataclass
class Backup:
    id: str
    name: str
    description: str
    instance_id: str
    type: str
    status: str
    begin: datetime
    start_mono: float
    duration: float
    seq: int
    end: datetime | None = None
    size_mb: int = 0
    job_id: str | None = None

    @property
    def take_up_minutes(self) -> int:
        return math.ceil(self.duration / 60) if self.end is not None else 0


@dataclass
class Job:
    id: str
    name: str
    instance_id: str
    instance_name: str
    backup_id: str
    created: datetime
    start_mono: float
    duration: float
    visible_at_mono: float
    status: str = JOB_RUNNING
    process: str = "0%"
    ended: datetime | None = None
    fail_reason: str = ""


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    project_id: str | None
    issued: datetime
    expires: datetime
    expires_mono: float


def new_backup_id() -> str:
    return uuid.uuid4().hex + "br07"


class State:
    """Instances, backups, jobs and tokens of one emulated project."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or Clock()
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self.timing = Timing.from_config(config)
        self._instances: dict[str, Instance] = {}
        self._backups: dict[str, Backup] = {}
        self._jobs: dict[str, Job] = {}
        self._tokens: dict[str, Token] = {}
        self.reset()

    # --- admin ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the configured start: seeded instances, no backups/jobs/tokens."""
        with self._lock:
            self.timing = Timing.from_config(self.config)
            self._backups.clear()
            self._jobs.clear()
            self._tokens.clear()
            self._instances.clear()
            created = self.now() - timedelta(days=30)
            for number, instance_id in enumerate(self.config.instances, start=1):
                self._instances[instance_id] = Instance(
                    id=instance_id,
                    name=f"taurusdb-{number:02d}",
                    created=created,
                    updated=created,
                )

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def configure(
        self,
        *,
        backup_seconds: float | None = None,
        token_ttl_seconds: float | None = None,
        job_visible_after_seconds: float | None = None,
        clock_offset_seconds: float | None = None,
        ignore_time_filters: bool | None = None,
    ) -> Timing:
        """Change timings; they apply to backups, jobs and tokens created afterwards.

        ``clock_offset_seconds`` moves the cloud's wall clock (timestamps it writes, and "now"
        for backups seeded without a time) against the machine's; ``ignore_time_filters`` makes
        GET /backups ignore ``begin_time``/``end_time`` as an API that lacks them would.
        """
        with self._lock:
            if backup_seconds is not None:
                self.timing.backup_seconds = backup_seconds
            if token_ttl_seconds is not None:
                self.timing.token_ttl_seconds = token_ttl_seconds
            if job_visible_after_seconds is not None:
                self.timing.job_visible_after_seconds = job_visible_after_seconds
            if clock_offset_seconds is not None:
                self.timing.clock_offset_seconds = clock_offset_seconds
            if ignore_time_filters is not None:
                self.timing.ignore_time_filters = ignore_time_filters
            return copy.copy(self.timing)

    def now(self) -> datetime:
        """The cloud's wall clock: the machine's, moved by ``clock_offset_seconds``."""
        return self._clock.now() + timedelta(seconds=self.timing.clock_offset_seconds)

    def put_instance(
        self,
        instance_id: str,
        *,
        status: str = "ACTIVE",
        name: str | None = None,
        fail_backups: bool = False,
    ) -> tuple[InstanceInfo, bool]:
        """Add or replace an instance (its backups stay). Returns (info, created)."""
        with self._lock:
            self._advance()
            now = self.now()
            existing = self._instances.get(instance_id)
            if existing is None:
                instance = Instance(
                    id=instance_id,
                    name=name or f"taurusdb-{len(self._instances) + 1:02d}",
                    status=status,
                    fail_backups=fail_backups,
                    created=now,
                    updated=now,
                )
                self._instances[instance_id] = instance
            else:
                existing.name = name or existing.name
                existing.status = status
                existing.fail_backups = fail_backups
                existing.updated = now
            return self._info(instance_id), existing is None

    def list_instances(self) -> list[InstanceInfo]:
        """Every instance with its current status, in the order they were added."""
        with self._lock:
            self._advance()
            return [self._info(instance_id) for instance_id in self._instances]

    def add_backup(
        self,
        instance_id: str,
        *,
        backup_type: str = "auto",
        name: str | None = None,
        status: str = COMPLETED,
        begin_time: datetime | None = None,
        description: str = "",
        count: int = 1,
        spacing_seconds: float = 3600.0,
    ) -> list[Backup]:
        """Seed backups (typically automated ones) without going through the API.

        ``count`` > 1 seeds that many in one step (cheap: one lock, one state pass), the
        first at ``begin_time`` (default now) and each next one ``spacing_seconds`` older;
        names get a ``-<n>`` suffix so they stay distinct. This is how a test or a benchmark
        gives an instance a long history (10,000 old manual backups in well under a second).
        """
        if not 1 <= count <= MAX_SEEDED:
            raise rules.ADMIN_BAD_REQUEST.error(f"count must be 1 to {MAX_SEEDED}")
        if spacing_seconds < 0:
            raise rules.ADMIN_BAD_REQUEST.error("spacing_seconds must be >= 0")
        with self._lock:
            self._advance()
            instance = self._instances.get(instance_id)
            if instance is None:
                raise rules.INSTANCE_NOT_FOUND.error()
            if backup_type not in rules.BACKUP_TYPES:
                raise rules.ADMIN_BAD_REQUEST.error(f"type must be one of {rules.BACKUP_TYPES}")
            if status not in BACKUP_STATUSES:
                raise rules.ADMIN_BAD_REQUEST.error(f"status must be one of {BACKUP_STATUSES}")
            first = begin_time or self.now()
            if first.tzinfo is None:
                first = first.replace(tzinfo=UTC)
            seeded: list[Backup] = []
            for number in range(count):
                begin = first - timedelta(seconds=spacing_seconds * number)
                label = name or f"{instance.name}-{backup_type}-{begin:%Y%m%d%H%M%S}"
                backup = Backup(
                    id=new_backup_id(),
                    name=label if count == 1 else f"{label}-{number}",
                    description=description,
                    instance_id=instance_id,
                    type=backup_type,
                    status=BUILDING,
                    begin=begin,
                    start_mono=self._clock.monotonic(),
                    duration=self.timing.backup_seconds,
                    seq=next(self._seq),
                )
                if status != BUILDING:
                    self._finish(backup, failed=status == FAILED)
                    backup.status = status
                self._backups[backup.id] = backup
                seeded.append(copy.copy(backup))
            return seeded

    # --- IAM --------------------------------------------------------------------------------
    def issue_token(self, project_id: str | None) -> Token:
        with self._lock:
            ttl = self.timing.token_ttl_seconds
            issued = self.now()
            token = Token(
                value="MIIT" + secrets.token_urlsafe(96),
                project_id=project_id,
                issued=issued,
                expires=issued + timedelta(seconds=ttl),
                expires_mono=self._clock.monotonic() + ttl,
            )
            self._tokens[token.value] = token
            return token

    def token_values(self) -> list[str]:
        """Every token issued since the last reset (tests look for them where none may be)."""
        with self._lock:
            return list(self._tokens)

    def find_token(self, value: str) -> tuple[Token | None, bool]:
        """(token or None if unknown/revoked, expired?)."""
        with self._lock:
            token = self._tokens.get(value)
            if token is None:
                return None, False
            return token, self._clock.monotonic() >= token.expires_mono

    # --- TaurusDB ---------------------------------------------------------------------------
    def create_backup(self, request: rules.CreateBackupRequest) -> tuple[Backup, Job]:
        with self._lock:
            self._advance()
            instance = self._instances.get(request.instance_id)
            if instance is None:
                raise rules.INSTANCE_NOT_FOUND.error()
            if self._building(request.instance_id):
                raise rules.BACKUP_IN_PROGRESS.error()
            if instance.status == "FROZEN":
                raise rules.INSTANCE_FROZEN.error()
            if instance.status != "ACTIVE":
                raise rules.INSTANCE_BUSY.error()
            now, mono = self.now(), self._clock.monotonic()
            duration = self.timing.backup_seconds
            job_id = str(uuid.uuid4())
            backup = Backup(
                id=new_backup_id(),
                name=request.name,
                description=request.description,
                instance_id=instance.id,
                type="manual",
                status=BUILDING,
                begin=now,
                start_mono=mono,
                duration=duration,
                seq=next(self._seq),
                job_id=job_id,
            )
            job = Job(
                id=job_id,
                name=BACKUP_JOB_NAME,
                instance_id=instance.id,
                instance_name=instance.name,
                backup_id=backup.id,
                created=now,
                start_mono=mono,
                duration=duration,
                visible_at_mono=mono + self.timing.job_visible_after_seconds,
            )
            self._backups[backup.id] = backup
            self._jobs[job.id] = job
            return copy.copy(backup), copy.copy(job)

    def list_backups(self, query: rules.BackupQuery) -> tuple[list[Backup], int]:
        """Matches newest first, paged; the count is of all matches."""
        with self._lock:
            self._advance()
            if self.timing.ignore_time_filters:
                query = replace(query, begin=None, end=None)
            matches = [b for b in self._backups.values() if _matches(b, query)]
            matches.sort(key=lambda b: (b.begin, b.seq), reverse=True)
            page = matches[query.offset : query.offset + query.limit]
            return [copy.copy(b) for b in page], len(matches)

    def delete_backup(self, backup_id: str) -> Backup:
        with self._lock:
            self._advance()
            backup = self._backups.get(backup_id)
            if backup is None:
                raise rules.BACKUP_NOT_FOUND.error()
            if backup.status == BUILDING or backup.type != "manual":
                raise rules.BACKUP_STATUS_FORBIDS.error()
            del self._backups[backup_id]
            return backup

    def get_job(self, job_id: str) -> Job:
        with self._lock:
            self._advance()
            job = self._jobs.get(job_id)
            if job is None or self._clock.monotonic() < job.visible_at_mono:
                raise rules.JOB_NOT_FOUND.error()
            return copy.copy(job)

    def get_instance(self, instance_id: str) -> InstanceInfo:
        with self._lock:
            self._advance()
            if instance_id not in self._instances:
                raise rules.INSTANCE_NOT_FOUND.error()
            return self._info(instance_id)

    # --- internals (lock held) --------------------------------------------------------------
    def _advance(self) -> None:
        mono = self._clock.monotonic()
        for backup in self._backups.values():
            if backup.status == BUILDING and mono >= backup.start_mono + backup.duration:
                instance = self._instances.get(backup.instance_id)
                self._finish(backup, failed=instance is not None and instance.fail_backups)
        for job in self._jobs.values():
            if job.status == JOB_RUNNING:
                share = (mono - job.start_mono) / job.duration if job.duration > 0 else 0.0
                job.process = f"{min(99, max(0, int(share * 100)))}%"

    def _finish(self, backup: Backup, *, failed: bool) -> None:
        backup.status = FAILED if failed else COMPLETED
        backup.end = backup.begin + timedelta(seconds=backup.duration)
        backup.size_mb = 0 if failed else BACKUP_SIZE_MB
        job = self._jobs.get(backup.job_id) if backup.job_id else None
        if job is not None:
            job.status = JOB_FAILED if failed else JOB_COMPLETED
            job.ended = backup.end
            job.process = ""
            job.fail_reason = FAIL_REASON if failed else ""

    def _building(self, instance_id: str) -> bool:
        return any(
            b.instance_id == instance_id and b.status == BUILDING for b in self._backups.values()
        )

    def _info(self, instance_id: str) -> InstanceInfo:
        instance = self._instances[instance_id]
        used_mb = sum(b.size_mb for b in self._backups.values() if b.instance_id == instance_id)
        return InstanceInfo(
            instance=copy.copy(instance),
            status="BACKING UP" if self._building(instance_id) else instance.status,
            backup_used_space_gb=round(used_mb / 1024, 2),
        )


def _matches(backup: Backup, query: rules.BackupQuery) -> bool:
    return (
        (query.instance_id is None or backup.instance_id == query.instance_id)
        and (query.backup_id is None or backup.id == query.backup_id)
        and (query.backup_type is None or backup.type == query.backup_type)
        and (query.begin is None or backup.begin >= query.begin)
        and (query.end is None or backup.begin <= query.end)
    )
