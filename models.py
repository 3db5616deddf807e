"""The TaurusDB API's data model and the normalized trigger.

Each documented rule is defined once here, as an annotated type, and applied at the edge
(inbound events) and on the way out (create requests). Response models are tolerant: the
API may add fields, and its examples are not always consistent (a dashed UUID as backup id
in one place, a ``…br07`` id in another), so only what we rely on is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "API_TIME_FORMAT",
    "ApiTime",
    "Backup",
    "BackupDescription",
    "BackupListItem",
    "BackupName",
    "BackupPage",
    "BackupStatus",
    "CreateBackupRequest",
    "CreateBackupResult",
    "DeletedBackup",
    "Handshake",
    "Instance",
    "InstanceId",
    "Job",
    "JobStatus",
    "Note",
    "Trigger",
]

API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
"""The API's ``yyyy-mm-ddThh:mm:ssZ``, where Z is a numeric offset such as ``+0800``."""

_INSTANCE_ID = re.compile(r"[0-9a-f]{32}in[0-9]{2}", re.ASCII)  # no other scripts' digits
_BACKUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{3,63}")
_FORBIDDEN_IN_DESCRIPTION = frozenset(">!<\"&'=\r\n")
DESCRIPTION_MAX = 256


def _instance_id(value: str) -> str:
    if not _INSTANCE_ID.fullmatch(value):
        raise PydanticCustomError(
            "instance_id",
            "must be 32 lowercase hexadecimal characters followed by 'in' and 2 digits "
            "(e.g. 07033b125fd94a8a96896f8bcfee6ddain07)",
        )
    return value


def _backup_name(value: str) -> str:
    if not 4 <= len(value) <= 64:
        raise PydanticCustomError(
            "backup_name", "must be 4 to 64 characters long (got {length})", {"length": len(value)}
        )
    if not value[0].isascii() or not value[0].isalpha():
        raise PydanticCustomError("backup_name", "must start with a letter")
    if not _BACKUP_NAME.fullmatch(value):
        raise PydanticCustomError(
            "backup_name", "may contain only letters, digits, hyphens (-) and underscores (_)"
        )
    return value


def _backup_description(value: str) -> str:
    if len(value) > DESCRIPTION_MAX:
        raise PydanticCustomError(
            "backup_description",
            "must be at most 256 characters long (got {length})",
            {"length": len(value)},
        )
    found = sorted(set(value) & _FORBIDDEN_IN_DESCRIPTION)
    if found:
        shown = " ".join(repr(c) for c in found)
        raise PydanticCustomError(
            "backup_description",
            "must not contain any of > ! < \" & ' = or line breaks (found {found})",
            {"found": shown},
        )
    return value


def _parse_api_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.strptime(value, API_TIME_FORMAT)
        except ValueError:
            raise PydanticCustomError(
                "api_time", "must be a time like 2020-07-07T01:17:05+0800"
            ) from None
    return value


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


InstanceId = Annotated[str, AfterValidator(_instance_id)]
"""A TaurusDB instance ID. The page says "UUID format"; real IDs are 32 hex + ``in`` + 2 digits."""

BackupName = Annotated[str, AfterValidator(_backup_name)]
"""4 to 64 characters, starts with a letter, only letters, digits, ``-`` and ``_``."""

BackupDescription = Annotated[str, AfterValidator(_backup_description)]
"""At most 256 characters, none of ``> ! < " & ' =``, no carriage return or line feed."""

ApiTime = Annotated[
    datetime,
    BeforeValidator(_parse_api_time),
    PlainSerializer(lambda t: t.strftime(API_TIME_FORMAT), return_type=str),
]
"""A timestamp in the API's format, parsed to an aware datetime and written back the same way."""


class BackupStatus(StrEnum):
    BUILDING = "BUILDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    AVAILABLE = "AVAILABLE"


class JobStatus(StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class CreateBackupRequest(BaseModel):
    """Body of ``POST /v3/{project_id}/backups/create``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: InstanceId
    name: BackupName
    description: BackupDescription | None = None


class _ApiModel(BaseModel):
    """Responses: keep what we use, ignore what the API adds."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Backup(_ApiModel):
    """The ``backup`` object of the 201 response."""

    id: str
    name: str
    description: str = ""
    begin_time: ApiTime
    status: BackupStatus
    type: str = "manual"
    instance_id: str


class CreateBackupResult(_ApiModel):
    """The 201 response: the backup as created and the ID of the job that builds it."""

    backup: Backup
    job_id: str


class Datastore(_ApiModel):
    type: str
    version: str = ""


class BackupListItem(_ApiModel):
    """One element of ``GET /v3/{project_id}/backups``."""

    id: str
    name: str
    description: str = ""
    begin_time: ApiTime
    end_time: Annotated[ApiTime | None, BeforeValidator(_empty_is_none)] = None
    status: BackupStatus
    take_up_time: int | None = None
    type: str
    size: float | None = None
    datastore: Datastore | None = None
    instance_id: str


class BackupPage(_ApiModel):
    backups: list[BackupListItem]
    total_count: int


class JobInstance(_ApiModel):
    id: str
    name: str = ""


class Job(_ApiModel):
    """``GET /v3/{project_id}/jobs?id=``; the status is mixed case, unlike backup status."""

    id: str
    name: str = ""
    status: JobStatus
    created: str = ""
    ended: str = ""
    process: str = ""
    instance: JobInstance | None = None
    entities: dict[str, Any] = Field(default_factory=dict)
    fail_reason: str = ""


class Instance(_ApiModel):
    """The fields of ``GET /v3/{project_id}/instances/{id}`` we act on."""

    id: str
    name: str = ""
    status: str
    project_id: str = ""
    type: str = ""
    datastore: Datastore | None = None


class DeletedBackup(_ApiModel):
    backup_id: str
    backup_name: str = ""


class Trigger(BaseModel):
    """One normalized request to act on, whatever source it came from.

    ``trigger_id`` is the sender's id for the event (its ``id``, a deployment id, a message
    id, else the body's hash), reported back in responses and callbacks. ``key`` is the
    idempotency key, the same for every redelivery of one trigger: the source, what identifies
    the event in material the sender authenticated, and the instance, encoded unambiguously
    (``events.base.trigger_key``). An event for several instances becomes one trigger per
    instance (``events.base.fan_out``). ``dry_run``: check everything, make and delete nothing.
    ``previous_key``: the key the previous release derived for the same trigger, so that the
    look-up still finds backups made before an upgrade (kept for one release).
    ``sent_at``: when the sender made the event, from signed material only (None when the
    source signs no time).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["pre-deploy"] = "pre-deploy"
    source: str
    trigger_id: str = Field(min_length=1)
    key: str = Field(min_length=1)
    previous_key: str | None = None
    instance_id: InstanceId
    name: BackupName | None = None
    description: BackupDescription | None = None
    callback_url: str | None = None
    wait: bool | None = None
    dry_run: bool = False
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Note:
    """A record that asks for no backup: a ping, a handshake, an event of another kind.

    ``status`` is a short word for machines (``ignored``, ``pong``, ``subscription_confirmed``,
    ``unsubscribed``), ``message`` says why for people.
    """

    status: str
    message: str


@dataclass(frozen=True)
class Handshake(Note):
    """A note the sender completes only when we visit ``url`` (SMN's subscription
    confirmation). The handler does the visit (``handlers.subscriptions``); ``url`` carries a
    token, so it is kept out of reprs and answers."""

    url: str = field(default="", repr=False)
    topic: str = ""
