"""Server-side validation rules and the error codes the real services answer with.

Codes and messages follow the OTC TaurusDB error table (appendix/error_codes.rst), the API
gateway codes (APIGW.*) and the IAM/Keystone error shape. Every rejection the emulator makes
is one of the ErrorSpec constants below, so tests and later fault injection can name them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any, Literal

from emulator.clock import parse_api_time

ErrorStyle = Literal["service", "gateway", "iam"]


class ApiError(Exception):
    """A rejection carrying its HTTP status and wire body style."""

    def __init__(self, spec: ErrorSpec, message: str | None = None) -> None:
        super().__init__(f"{spec.code}: {message or spec.message}")
        self.spec = spec
        self.message = message or spec.message

    @property
    def status(self) -> int:
        return self.spec.status

    def body(self, request_id: str) -> dict[str, Any]:
        """Service errors: code+msg; gateway errors add request_id; IAM uses Keystone's shape."""
        if self.spec.style == "iam":
            title = HTTPStatus(self.spec.status).phrase
            return {"error": {"code": self.spec.status, "message": self.message, "title": title}}
        body: dict[str, Any] = {"error_code": self.spec.code, "error_msg": self.message}
        if self.spec.style == "gateway":
            body["request_id"] = request_id
        return body


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    code: str
    message: str
    style: ErrorStyle = "service"

    def error(self, message: str | None = None) -> ApiError:
        return ApiError(self, message)


# --- API gateway (in front of every TaurusDB call; body carries request_id) -------------------
API_NOT_FOUND = ErrorSpec(
    404,
    "APIGW.0101",
    "The API does not exist or has not been published in the environment.",
    "gateway",
)
BAD_REQUEST = ErrorSpec(400, "APIGW.0201", "Bad request.", "gateway")
REQUEST_TOO_LARGE = ErrorSpec(413, "APIGW.0201", "Request entity too large.", "gateway")
TOKEN_MISSING = ErrorSpec(
    401,
    "APIGW.0301",
    "Incorrect IAM authentication information: x-auth-token not found",
    "gateway",
)
TOKEN_INVALID = ErrorSpec(
    401, "APIGW.0301", "Incorrect IAM authentication information: decrypt token fail", "gateway"
)
TOKEN_EXPIRED = ErrorSpec(401, "APIGW.0307", "The token must be updated.", "gateway")
# AK/SK: the documented sub-messages of APIGW.0301; the date and token wording is ours.
AKSK_SIGNATURE_FAIL = ErrorSpec(
    401,
    "APIGW.0301",
    "Incorrect IAM authentication information: verify aksk signature fail",
    "gateway",
)
AKSK_UNKNOWN = ErrorSpec(
    401,
    "APIGW.0301",
    "Incorrect IAM authentication information: Get secretKey failed, ak not exist",
    "gateway",
)
AKSK_DATE = ErrorSpec(
    401,
    "APIGW.0301",
    "Incorrect IAM authentication information: X-Sdk-Date is missing, "
    "malformed or more than 15 minutes off the server time",
    "gateway",
)
AKSK_SECURITY_TOKEN = ErrorSpec(
    401,
    "APIGW.0301",
    "Incorrect IAM authentication information: the security token of the "
    "temporary AK is missing or invalid",
    "gateway",
)
AKSK_PROJECT = ErrorSpec(
    401,
    "APIGW.0301",
    "Incorrect IAM authentication information: the AK has no access to this project",
    "gateway",
)

# --- TaurusDB service (DBS.*) ------------------------------------------------------------------
PARAMETER_ERROR = ErrorSpec(400, "DBS.200001", "Parameter error.")
EMPTY_REQUEST = ErrorSpec(400, "DBS.200006", "The request is null. Enter a request parameter.")
INVALID_INSTANCE_ID = ErrorSpec(400, "DBS.280404", "Invalid DB instance ID or node ID format.")
INVALID_BACKUP_NAME = ErrorSpec(400, "DBS.280277", "Invalid object name.")
INVALID_DESCRIPTION = ErrorSpec(400, "DBS.280127", "Invalid backup description.")
INVALID_LIMIT = ErrorSpec(
    400, "DBS.280439", "Invalid records. Enter a positive integer less than 100."
)
INSTANCE_FROZEN = ErrorSpec(400, "DBS.280449", "Operation not allowed on frozen objects.")
JOB_NOT_FOUND = ErrorSpec(400, "DBS.200543", "The job does not exist.")
BACKUP_STATUS_FORBIDS = ErrorSpec(
    400, "DBS.201208", "The operation is not allowed by the backup status."
)
INSTANCE_NOT_FOUND = ErrorSpec(404, "DBS.200002", "The DB instance does not exist.")
BACKUP_NOT_FOUND = ErrorSpec(404, "DBS.201010", "The backup information does not exist.")
INSTANCE_BUSY = ErrorSpec(
    409,
    "DBS.200019",
    "Another operation is being performed on the DB instance or the DB instance is faulty.",
)
BACKUP_IN_PROGRESS = ErrorSpec(409, "DBS.201205", "Backup is in progress, please wait.")
SERVER_FAILURE = ErrorSpec(500, "DBS.108000", "Server failure.")

# --- IAM (Keystone-style {"error": {"code", "message", "title"}}) ------------------------------
IAM_BAD_REQUEST = ErrorSpec(400, "400", "The request body is malformed.", "iam")
IAM_WRONG_CREDENTIALS = ErrorSpec(401, "401", "The username or password is wrong.", "iam")
IAM_UNKNOWN_PROJECT = ErrorSpec(
    401, "401", "The project does not exist or the user has no access to it.", "iam"
)

# --- Emulator admin endpoints (not a real API) -------------------------------------------------
ADMIN_BAD_REQUEST = ErrorSpec(400, "EMULATOR.0400", "Bad emulator admin request.")
ADMIN_NOT_FOUND = ErrorSpec(404, "EMULATOR.0404", "Not found.")

# --- Rules -------------------------------------------------------------------------------------
INSTANCE_ID_RE = re.compile(r"[0-9a-f]{32}in[0-9]{2}")
BACKUP_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{3,63}")
DESCRIPTION_MAX_CHARS = 256
#: The 7 documented characters, plus CR (Huawei docs) and LF (rejected to be safe).
DESCRIPTION_FORBIDDEN = frozenset(">!<\"&'=\r\n")
LIMIT_MAX = 100
BACKUP_TYPES = ("auto", "manual")


def is_instance_id(value: object) -> bool:
    return isinstance(value, str) and INSTANCE_ID_RE.fullmatch(value) is not None


def check_instance_id(value: object) -> str:
    if not isinstance(value, str) or not is_instance_id(value):
        raise INVALID_INSTANCE_ID.error()
    return value


def check_backup_name(value: object) -> str:
    if not isinstance(value, str) or BACKUP_NAME_RE.fullmatch(value) is None:
        raise INVALID_BACKUP_NAME.error()
    return value


def check_description(value: object) -> str:
    if value is None:
        return ""
    if (
        not isinstance(value, str)
        or len(value) > DESCRIPTION_MAX_CHARS
        or any(ch in DESCRIPTION_FORBIDDEN for ch in value)
    ):
        raise INVALID_DESCRIPTION.error()
    return value


def parse_json_object(raw: bytes, *, empty: ErrorSpec, invalid: ErrorSpec) -> dict[str, Any]:
    if not raw.strip():
        raise empty.error()
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid.error() from None
    if not isinstance(value, dict):
        raise invalid.error()
    return value


@dataclass(frozen=True)
class CreateBackupRequest:
    instance_id: str
    name: str
    description: str


def parse_create_backup(raw: bytes) -> CreateBackupRequest:
    """Body checks in the order the emulator promises: instance_id, name, description."""
    body = parse_json_object(raw, empty=EMPTY_REQUEST, invalid=PARAMETER_ERROR)
    return CreateBackupRequest(
        instance_id=check_instance_id(body.get("instance_id")),
        name=check_backup_name(body.get("name")),
        description=check_description(body.get("description")),
    )


@dataclass(frozen=True)
class BackupQuery:
    instance_id: str | None = None
    backup_id: str | None = None
    backup_type: str | None = None
    offset: int = 0
    limit: int = LIMIT_MAX
    begin: datetime | None = None
    end: datetime | None = None


def _digits(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def parse_backup_query(query: Mapping[str, str]) -> BackupQuery:
    """Query of GET /backups; blank values count as absent."""
    params = {key: value for key, value in query.items() if value != ""}
    instance_id = params.get("instance_id")
    if instance_id is not None:
        check_instance_id(instance_id)
    backup_type = params.get("backup_type")
    if backup_type is not None and backup_type not in BACKUP_TYPES:
        raise PARAMETER_ERROR.error()
    begin = end = None
    if "begin_time" in params:
        begin = parse_api_time(params["begin_time"])
        if begin is None:
            raise PARAMETER_ERROR.error()
    if "end_time" in params:
        end = parse_api_time(params["end_time"])
        if end is None:
            raise PARAMETER_ERROR.error()
    if begin is not None and end is not None and end <= begin:
        raise PARAMETER_ERROR.error()
    offset = _digits(params.get("offset", "0"))
    if offset is None:
        raise PARAMETER_ERROR.error()
    limit = _digits(params.get("limit", str(LIMIT_MAX)))
    if limit is None or not 1 <= limit <= LIMIT_MAX:
        raise INVALID_LIMIT.error()
    return BackupQuery(
        instance_id=instance_id,
        backup_id=params.get("backup_id"),
        backup_type=backup_type,
        offset=offset,
        limit=limit,
        begin=begin,
        end=end,
    )
