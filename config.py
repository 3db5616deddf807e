"""Settings, read once from the environment.

The OpenStack names (``OS_*``) are the ones Open Telekom Cloud users already have in their
openrc. Secrets are ``SecretStr`` so that a stray ``repr`` or log line shows ``**********``.

Every secret can also come from a file (``<NAME>_FILE``, e.g. a mounted Kubernetes secret);
setting both ``NAME`` and ``NAME_FILE`` is an error rather than a silent precedence rule. The
inbound secrets and tokens and ``CALLBACK_SECRET`` hold one or several values separated by
spaces, commas or newlines, for rotation without downtime.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo

from clients.ssrf import allowed_host
from errors import ConfigurationError

__all__ = [
    "ROTATING",
    "SECRET_FILE_FIELDS",
    "AkSkCredentials",
    "Credentials",
    "PasswordCredentials",
    "Rotating",
    "Settings",
    "load_settings",
    "split_values",
]


class _CommaSeparated:
    """Marks a list setting written as ``a,b,c`` in its variable (any other list is JSON)."""


CommaList = Annotated[list[str], _CommaSeparated()]

DEFAULT_EVENT_TYPES = ("*pre-deploy", "*predeploy", "dev.knative.kafka.event")
"""CloudEvents types accepted unless ``EVENT_TYPES`` says otherwise (``*`` matches anything)."""
Rotating = Literal[
    "webhook_secret",
    "webhook_token",
    "github_webhook_secret",
    "gitlab_webhook_token",
    "gitlab_webhook_signing_token",
    "callback_secret",
]
"""The secrets that rotate: each may hold several values, and has a ``<name>_previous``."""
ROTATING: tuple[Rotating, ...] = get_args(Rotating)
#: The secrets that may be read from ``<NAME>_FILE`` instead of ``<NAME>``.
SECRET_FILE_FIELDS = (
    "os_password",
    "os_secret_key",
    "os_security_token",
    *ROTATING,
    *(f"{name}_previous" for name in ROTATING),
)
_SECRET_FILE_MAX_BYTES = 64 * 1024
_OTC_REGIONS = frozenset({"eu-de", "eu-nl", "eu-ch2"})


def split_values(text: str) -> list[str]:
    """The values of a rotating secret: one per line, each line whole (but a trailing ``\\r``)."""
    return [line.removesuffix("\r") for line in text.split("\n") if line.strip()]


@dataclass(frozen=True)
class AkSkCredentials:
    """AK/SK request signing (``OS_ACCESS_KEY``, ``OS_SECRET_KEY``, ``OS_PROJECT_ID``)."""

    access_key: str
    secret_key: str = field(repr=False)
    project_id: str
    security_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PasswordCredentials:
    """IAM password authentication for a token scoped to a project (by id or by name)."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    domain_name: str
    project_id: str | None
    project_name: str | None


Credentials = AkSkCredentials | PasswordCredentials


def _from_environment(fields: dict[str, FieldInfo]) -> dict[str, Any]:
    """The settings' input, read from the environment as pydantic-settings read it for us.

    Names are case-insensitive; a field with aliases takes the first one that is set; a list
    or dict (but a ``CommaList``) is JSON. Then ``<NAME>_FILE`` for the secrets that allow it,
    where ``NAME`` is not set (``_secret_files``). Plain pydantic on ``os.environ``: the
    settings library cost a cold start more than it gave (docs/operations.md).
    """
    environ = {name.lower(): value for name, value in os.environ.items()}
    values: dict[str, Any] = {}
    for name, info in fields.items():
        alias = info.validation_alias
        keys = alias.choices if isinstance(alias, AliasChoices) else [name]
        for key in keys:
            if isinstance(key, str) and key.lower() in environ:
                value = environ[key.lower()]
                values[key] = _json(name, value) if _is_json(info) else value
                break
    for name, value in _secret_files(environ).items():
        values.setdefault(name, value)  # a variable that is set (even blank) comes first
    return values


def _is_json(info: FieldInfo) -> bool:
    origin = get_origin(info.annotation) or info.annotation
    return origin in (dict, list) and not any(
        isinstance(item, _CommaSeparated) for item in info.metadata
    )


def _json(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        raise ConfigurationError(
            f"invalid configuration: {name.upper()}: is not valid JSON"
        ) from None


def _secret_files(environ: dict[str, str]) -> dict[str, str]:
    """``<NAME>_FILE``: the secret is the file's content, surrounding whitespace stripped."""
    values: dict[str, str] = {}
    for field_name in SECRET_FILE_FIELDS:
        variable = field_name.upper()
        path = environ.get(f"{field_name}_file", "").strip()
        if not path:
            continue
        if environ.get(field_name, "").strip():
            raise ConfigurationError(
                f"invalid configuration: set {variable} or {variable}_FILE, not both"
            )
        values[field_name] = _read_secret_file(f"{variable}_FILE", Path(path))
    return values


def _read_secret_file(variable: str, path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(_SECRET_FILE_MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(
            f"invalid configuration: {variable}: cannot read {str(path)!r} ({reason})"
        ) from None
    if len(data) > _SECRET_FILE_MAX_BYTES:
        raise ConfigurationError(
            f"invalid configuration: {variable}: the file is larger than 64 KiB"
        )
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"invalid configuration: {variable}: the file is not UTF-8 text"
        ) from None
    if not text:
        raise ConfigurationError(f"invalid configuration: {variable}: the file is empty")
    return text


class Settings(BaseModel):
    """Every knob of the function; the field name upper-cased is the environment variable.

    ``Settings()`` reads the environment (``_from_environment``); keyword arguments override it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_from_environment(type(self).model_fields), **values})

    # IAM and API
    os_auth_url: str | None = None
    os_username: str | None = None
    os_password: SecretStr | None = None
    os_user_domain_name: str | None = Field(
        default=None, validation_alias=AliasChoices("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME")
    )
    os_project_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{32}$")
    os_project_name: str | None = None
    os_region_name: str = Field(default="eu-de", pattern=r"^[a-z0-9-]+$")
    os_access_key: str | None = None
    os_secret_key: SecretStr | None = None
    os_security_token: SecretStr | None = None
    gaussdb_endpoint: str | None = None
    api_timeout_seconds: float = Field(default=8.0, gt=0, le=60)

    # inbound verification
    webhook_secret: SecretStr | None = None
    webhook_token: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    gitlab_webhook_token: SecretStr | None = None
    gitlab_webhook_signing_token: SecretStr | None = None
    webhook_secret_previous: SecretStr | None = None
    webhook_token_previous: SecretStr | None = None
    github_webhook_secret_previous: SecretStr | None = None
    gitlab_webhook_token_previous: SecretStr | None = None
    gitlab_webhook_signing_token_previous: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_json_depth: int = Field(default=32, ge=2, le=512)
    max_records_per_event: int = Field(default=100, gt=0)
    max_instances_per_event: int = Field(default=10, ge=1, le=100)

    # retries, idempotency and waiting
    deadline_seconds: float = Field(default=9.0, gt=0, le=3600)
    wait_for_completion: bool = False
    wait_timeout_seconds: float = Field(default=600.0, gt=0, le=86400)
    poll_interval_seconds: float = Field(default=10.0, ge=0.05, le=600)
    idempotency_window_days: float = Field(default=7.0, gt=0, le=3650)
    clock_skew_seconds: float = Field(default=900.0, ge=0, le=86400)

    # retention
    retention_keep: int = Field(default=0, ge=0, le=1000)
    retention_min_age_hours: float = Field(default=24.0, ge=0, le=8760)

    # callbacks
    callback_url: str | None = None
    callback_secret: SecretStr | None = None
    callback_secret_previous: SecretStr | None = None
    callback_allowed_hosts: CommaList = Field(default_factory=list)
    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    callback_retry_seconds: float = Field(default=8.0, ge=0, le=600)

    # event sources
    event_types: CommaList = Field(default_factory=lambda: list(DEFAULT_EVENT_TYPES))
    smn_topic_urns: CommaList = Field(default_factory=list)
    smn_endpoint: str | None = None
    smn_allowed_hosts: CommaList = Field(default_factory=list)

    # authorization and mapping
    allowed_instances: CommaList = Field(default_factory=list)
    instance_map: dict[str, str] = Field(default_factory=dict)

    # the function's own public base URL (answers' status_url and Location are absolute with it)
    public_url: str | None = None

    # logging
    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    @field_validator(*SECRET_FILE_FIELDS)
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator(
        "webhook_secret",
        "callback_secret",
        "gitlab_webhook_signing_token",
        "webhook_secret_previous",
        "callback_secret_previous",
        "gitlab_webhook_signing_token_previous",
    )
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for part in split_values(value.get_secret_value()):
            text = part.removeprefix("whsec_")
            try:
                key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except ValueError:
                key = b""
            if len(key) < 16:
                raise ValueError(
                    "must be a Standard Webhooks secret: whsec_ followed by the base64 of at "
                    "least 16 random bytes (e.g. 'whsec_' + output of: openssl rand -base64 32); "
                    "for rotation, put the previous one in <NAME>_PREVIOUS (or one per line)"
                )
        return value

    # -- secrets and credentials ------------------------------------------------------------

    def secrets(self, name: Rotating) -> list[str]:
        """Every value of a rotating secret: ``<NAME>``'s lines, then ``<NAME>_PREVIOUS``'s."""
        found: list[str] = []
        for value in (getattr(self, name), getattr(self, f"{name}_previous")):
            if value is not None:
                found += split_values(value.get_secret_value())
        return list(dict.fromkeys(found))

    def secret_values(self) -> list[str]:
        """Every configured secret in every form it may take in text, for redaction.

        Each value of a rotating secret on its own, and a Standard Webhooks secret also without
        its ``whsec_`` prefix (the part that is the key).
        """
        found: set[str] = set()
        for field_name in SECRET_FILE_FIELDS:
            value: SecretStr | None = getattr(self, field_name)
            if value is None:
                continue
            text = value.get_secret_value()
            found.add(text)
            for part in split_values(text):
                found.update({part, part.removeprefix("whsec_")})
        return sorted(found, key=len, reverse=True)

    def missing_credentials(self) -> list[str]:
        """The variables the API credentials still lack (alternatives joined with `` or ``).

        AK/SK signing as soon as either key is set, else IAM password authentication.
        """
        return [name for name, value in self._credential_fields().items() if not _is_set(value)]

    def credentials(self) -> Credentials:
        """The API credentials; ``ConfigurationError`` naming every missing variable."""
        aksk = self._uses_aksk()
        missing = self.missing_credentials()
        if missing:
            method = "AK/SK request signing" if aksk else "IAM password authentication"
            raise ConfigurationError(
                "; ".join(f"{name} is not set (needed for {method})" for name in missing)
            )
        if aksk:
            return AkSkCredentials(
                access_key=self.os_access_key or "",
                secret_key=_text(self.os_secret_key),
                project_id=self.os_project_id or "",
                security_token=_text(self.os_security_token) or None,
            )
        return PasswordCredentials(
            auth_url=self.auth_url,
            username=self.os_username or "",
            password=_text(self.os_password),
            domain_name=self.os_user_domain_name or "",
            project_id=self.os_project_id,
            project_name=self.os_project_name,
        )

    def _uses_aksk(self) -> bool:
        return _is_set(self.os_access_key) or _is_set(self.os_secret_key)

    def _credential_fields(self) -> dict[str, object]:
        if self._uses_aksk():
            return {
                "OS_ACCESS_KEY": self.os_access_key,
                "OS_SECRET_KEY": self.os_secret_key,
                "OS_PROJECT_ID": self.os_project_id,
            }
        return {
            "OS_USERNAME": self.os_username,
            "OS_PASSWORD": self.os_password,
            "OS_USER_DOMAIN_NAME": self.os_user_domain_name,
            "OS_PROJECT_ID or OS_PROJECT_NAME": self.os_project_id or self.os_project_name,
        }

    @field_validator(
        "callback_allowed_hosts",
        "allowed_instances",
        "event_types",
        "smn_topic_urns",
        "smn_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("event_types")
    @classmethod
    def _default_when_empty(cls, value: list[str]) -> list[str]:
        return value or list(DEFAULT_EVENT_TYPES)

    @field_validator("callback_allowed_hosts", "smn_allowed_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:  # host, host:port, [v6] or [v6]:port; a bare host: any port
            allowed_host(entry)
        return [host.lower() for host in value]

    @field_validator(
        "os_auth_url",
        "gaussdb_endpoint",
        "callback_url",
        "os_project_name",
        "os_username",
        "smn_endpoint",
        "public_url",
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("smn_endpoint")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(
                "must be an absolute https:// URL such as https://smn.eu-de.otc.t-systems.com"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute https:// URL such as https://backup.example.com/")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a base URL without query, fragment or credentials")
        return value.rstrip("/") + "/"

    @property
    def auth_url(self) -> str:
        """IAM endpoint, ``…/v3``; the region's public IAM unless ``OS_AUTH_URL`` says otherwise."""
        url = self.os_auth_url or f"https://iam.{self.os_region_name}.otc.t-systems.com/v3"
        return url.rstrip("/")

    @property
    def api_endpoint(self) -> str:
        """TaurusDB API base URL, without the ``/v3/{project_id}`` part."""
        url = (
            self.gaussdb_endpoint
            or f"https://gaussdb-mysql.{self.os_region_name}.otc.t-systems.com"
        )
        return url.rstrip("/")

    @property
    def smn_hosts(self) -> list[str]:
        """Hosts SMN's ``signing_cert_url`` and ``subscribe_url`` may name (https only).

        The SMN and console hosts of ``OS_REGION_NAME`` as the cloud's documentation and real
        messages show them (docs/sources.md lists the sources), then ``SMN_ALLOWED_HOSTS``.
        ``SMN_ENDPOINT`` (an emulator, a test) is allowed on its own scheme and port besides.
        """
        region = self.os_region_name
        if region in _OTC_REGIONS:
            suffix = "sc.otc.t-systems.com" if region == "eu-ch2" else "otc.t-systems.com"
            hosts = [f"smn.{region}.{suffix}", f"console.{suffix}", f"console.{region}.{suffix}"]
        else:  # Huawei Cloud
            hosts = [
                f"smn.{region}.myhuaweicloud.com",
                "console.huaweicloud.com",
                "console-intl.huaweicloud.com",
                f"{region}-console.huaweicloud.com",
            ]
        return list(dict.fromkeys(hosts + self.smn_allowed_hosts))


def _text(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _is_set(value: object) -> bool:
    if value is None:
        return False
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return bool(str(text).strip())


def load_settings() -> Settings:
    """Build the settings, turning pydantic's report into one message naming each variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
            problems.append(f"{variable}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
