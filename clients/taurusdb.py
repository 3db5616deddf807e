"""The typed TaurusDB (GaussDB for MySQL) API v3 client: the only code that talks to the API.

One ``httpx.Client`` per ``TaurusDBClient``; the process keeps one instance and reuses it
across events, so connections and the IAM token survive between invocations. Every method
is one HTTP request and either returns a parsed model or raises one of:

``ApiError``                  the API answered with an error (or with a body we cannot read)
``UpstreamUnavailableError``  the API could not be reached or did not answer in time
``AuthenticationError``       IAM refused the credentials (raised by ``TokenAuth``)

There are no retries here: each method is a single attempt, so a retry policy can wrap it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

import logs
from clients import http
from clients.auth import CONTENT_TYPE, TokenAuth
from clients.retry import request_timeout
from errors import BAD_RESPONSE, ApiError, UpstreamUnavailableError
from models import (
    BackupListItem,
    BackupPage,
    CreateBackupRequest,
    CreateBackupResult,
    DeletedBackup,
    Instance,
    Job,
)

__all__ = ["BAD_RESPONSE", "USER_AGENT", "TaurusDBClient", "api_error", "api_time"]

USER_AGENT = http.USER_AGENT

BackupType = Literal["auto", "manual"]
_M = TypeVar("_M", bound=BaseModel)


def _segment(value: str, what: str) -> str:
    """One path segment from input, percent-encoded so it cannot change the path."""
    if value in ("", ".", ".."):
        raise ValueError(f"{what} must not be empty or a dot segment (got {value!r})")
    return quote(value, safe="")


def _error_fields(data: Any) -> tuple[str | None, str | None]:
    """``error_code``/``error_msg``, else ``code``/``message``, else ``{"error": {…}}``."""
    if not isinstance(data, dict):
        return None, None
    for code_key, msg_key in (("error_code", "error_msg"), ("code", "message")):
        code, msg = data.get(code_key), data.get(msg_key)
        if code is not None or msg is not None:
            return (
                str(code) if code is not None else None,
                str(msg) if msg is not None else None,
            )
    nested = data.get("error")
    if isinstance(nested, dict):
        return _error_fields(nested)
    return None, None


_CREDENTIAL_HEADERS = ("x-auth-token", "x-security-token", "authorization")


def api_error(response: httpx.Response) -> ApiError:
    """An ``ApiError`` for a non-2xx answer, with as much of the API's reason as it gave."""
    status = response.status_code
    request_id = response.headers.get("X-Request-Id") or None
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    code, msg = _error_fields(data)
    if request_id is None and isinstance(data, dict) and isinstance(data.get("request_id"), str):
        request_id = data["request_id"]
    reason = response.reason_phrase or f"HTTP {status}"
    # An echoing gateway may quote the credentials the request carried: never pass them on.
    sent = [response.request.headers.get(name, "") for name in _CREDENTIAL_HEADERS]
    return ApiError(
        status_code=status,
        error_code=logs.scrub(code, sent) if code else f"HTTP.{status}",
        error_msg=http.capped(logs.scrub(msg or reason, sent)),
        request_id=request_id,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta form); an HTTP date or garbage counts as absent."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def _bad_response(operation: str, detail: str) -> ApiError:
    return ApiError(502, BAD_RESPONSE, http.capped(f"unexpected answer to {operation}: {detail}"))


class TaurusDBClient:
    """Typed calls to ``{endpoint}/v3/{project_id}/…``; thread-safe, one connection pool."""

    def __init__(
        self,
        *,
        endpoint: str,
        auth: httpx.Auth,
        project_id: str | Callable[[], str],
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        language: str = "en-us",
    ) -> None:
        """``auth`` signs (``AkSkAuth``) or carries a token (``TokenAuth``), as with
        ``httpx.Client(auth=…)``; a ``TokenAuth`` becomes this client's: ``prefetch`` fetches
        its token, ``close`` closes it."""
        self._project_id = project_id
        self._timeout = timeout
        self._owned = [auth] if isinstance(auth, TokenAuth) else []
        self._http = http.client(
            timeout_seconds=timeout,
            base_url=endpoint.rstrip("/"),
            auth=auth,
            transport=transport,
            headers={
                "X-Language": language,
                "Accept": "application/json",
                "Content-Type": CONTENT_TYPE,  # the official SDK's, on every request
            },
        )

    # -- lifecycle ----------------------------------------------------------------------

    def prefetch(self) -> None:
        """What the first call would wait for, fetched ahead: the IAM token, then a connection.

        For a background thread at start (see ``main``). The connection comes from an
        unauthenticated ``HEAD /`` on the API host (its answer does not matter; no credentials,
        no API operation): its TCP and TLS handshakes are then done, and the connection waits in
        the pool for the first call. Raises what the token fetch raises; the caller logs it and
        the first call fetches again. The connection is made either way.
        """
        try:
            for auth in self._owned:
                auth.prefetch()
        finally:
            with suppress(httpx.HTTPError):  # the first call connects itself, reports failures
                self._http.head("/", auth=httpx.Auth()).close()  # httpx.Auth(): none

    def close(self) -> None:
        self._http.close()
        for auth in self._owned:
            auth.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- API ----------------------------------------------------------------------------

    def create_backup(self, request: CreateBackupRequest) -> CreateBackupResult:
        """``POST /v3/{project_id}/backups/create`` (201); the backup is BUILDING afterwards."""
        body = request.model_dump(mode="json", exclude_none=True)
        data = self._call("POST", "create_backup", ("backups", "create"), json=body, expected=201)
        return self._parse(CreateBackupResult, data, "create_backup")

    def list_backups(
        self,
        *,
        instance_id: str | None = None,
        backup_id: str | None = None,
        backup_type: BackupType | None = None,
        offset: int = 0,
        limit: int = 100,
        begin_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> BackupPage:
        """One page of ``GET /v3/{project_id}/backups``; ``total_count`` counts all pages.

        ``begin_time``/``end_time`` go out in the documented ``yyyy-mm-ddThh:mm:ssZ`` form
        with a numeric offset (UTC, ``+0000``; httpx sends the ``+`` as ``%2B``).
        """
        params = {
            "instance_id": instance_id,
            "backup_id": backup_id,
            "backup_type": backup_type,
            "offset": str(offset),
            "limit": str(limit),
            "begin_time": api_time(begin_time) if begin_time is not None else None,
            "end_time": api_time(end_time) if end_time is not None else None,
        }
        data = self._call(
            "GET",
            "list_backups",
            ("backups",),
            params={key: value for key, value in params.items() if value is not None},
        )
        return self._parse(BackupPage, data, "list_backups")

    def iter_backups(
        self,
        *,
        instance_id: str | None = None,
        backup_id: str | None = None,
        backup_type: BackupType | None = None,
        page_size: int = 100,
        begin_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> Iterator[BackupListItem]:
        """Every backup matching the filters, one page request at a time (lazily)."""
        offset = 0
        while True:
            page = self.list_backups(
                instance_id=instance_id,
                backup_id=backup_id,
                backup_type=backup_type,
                offset=offset,
                limit=page_size,
                begin_time=begin_time,
                end_time=end_time,
            )
            yield from page.backups
            offset += len(page.backups)
            if not page.backups or offset >= page.total_count:
                return

    def get_job(self, job_id: str) -> Job:
        """``GET /v3/{project_id}/jobs?id=``; a fresh job may be unknown for a few seconds."""
        data = self._call("GET", "get_job", ("jobs",), params={"id": job_id})
        return self._parse(Job, _unwrap(data, "job", "get_job"), "get_job")

    def get_instance(self, instance_id: str) -> Instance:
        """``GET /v3/{project_id}/instances/{instance_id}``."""
        path = ("instances", _segment(instance_id, "instance_id"))
        data = self._call("GET", "get_instance", path)
        return self._parse(Instance, _unwrap(data, "instance", "get_instance"), "get_instance")

    def delete_backup(self, backup_id: str) -> DeletedBackup:
        """``DELETE /v3/{project_id}/backups/{backup_id}`` (manual, completed backups only)."""
        path = ("backups", _segment(backup_id, "backup_id"))
        data = self._call("DELETE", "delete_backup", path)
        return self._parse(DeletedBackup, data, "delete_backup")

    # -- internals ----------------------------------------------------------------------

    def project_id(self) -> str:
        """The project in every path; resolved lazily (from the token) when not configured."""
        value = self._project_id
        return value if isinstance(value, str) else value()

    def _call(
        self,
        method: str,
        operation: str,
        path: tuple[str, ...],
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        expected: int = 200,
    ) -> Any:
        """Send one request; return its JSON body, or raise the matching error."""
        url = "/v3/" + "/".join((_segment(self.project_id(), "project_id"), *path))
        timeout = request_timeout(self._timeout)
        try:
            response = self._http.request(
                method,
                url,
                params=params,
                json=json,
                timeout=http.timeout(timeout),
            )
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(
                f"{operation}: the TaurusDB API did not answer within {timeout:g} s",
                timed_out=True,
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(
                f"{operation}: the TaurusDB API could not be reached ({type(exc).__name__})"
            ) from exc
        except httpx.DecodingError as exc:
            raise _bad_response(operation, "the body could not be decoded") from exc

        if not response.is_success:
            raise api_error(response)
        if response.status_code != expected:
            raise _bad_response(operation, f"HTTP {response.status_code} instead of {expected}")
        try:
            return response.json()
        except ValueError:
            raise _bad_response(operation, "the body is not JSON") from None

    @staticmethod
    def _parse(model: type[_M], data: Any, operation: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            where = ".".join(str(part) for part in errors[0]["loc"]) or "body"
            raise _bad_response(
                operation,
                f"{len(errors)} field(s) do not match, first {where}: {errors[0]['msg']}",
            ) from None


def api_time(moment: datetime) -> str:
    """The API's time format, ``2020-07-06T10:41:14+0000`` (numeric offset, no colon)."""
    if moment.tzinfo is None:
        raise ValueError("an API time needs a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S%z")


def _unwrap(data: Any, key: str, operation: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise _bad_response(operation, f"no {key!r} object in the body")
    return data[key]
