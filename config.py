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
import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from clients.ssrf import allowed_host
from errors import ConfigurationError

__all__ = ["SECRET_FILE_FIELDS", "Settings", "load_settings", "split_values"]

CommaList = Annotated[list[str], NoDecode]

DEFAULT_EVENT_TYPES = ("*pre-deploy", "*predeploy", "dev.knative.kafka.event")
"""CloudEvents types accepted unless ``EVENT_TYPES`` says otherwise (``*`` matches anything)."""
#: The secrets that may be read from ``<NAME>_FILE`` instead of ``<NAME>``.
SECRET_FILE_FIELDS = (
    "os_password",
    "os_secret_key",
    "os_security_token",
    "webhook_secret",
    "webhook_token",
    "github_webhook_secret",
    "gitlab_webhook_token",
    "gitlab_webhook_signing_token",
    "callback_secret",
)
#: The secrets that may hold several values at once (rotation); passwords and keys may not.
_ROTATING_FIELDS = (
    "webhook_secret",
    "webhook_token",
    "github_webhook_secret",
    "gitlab_webhook_token",
    "gitlab_webhook_signing_token",
    "callback_secret",
)
_SECRET_FILE_MAX_BYTES = 64 * 1024


def split_values(text: str) -> list[str]:
    """Several values in one setting: separated by spaces, commas or newlines."""
    return [part for part in re.split(r"[\s,]+", text) if part]


class _SecretFiles(PydanticBaseSettingsSource):
    """``<NAME>_FILE``: the secret is the file's content, surrounding whitespace stripped."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads all files at once

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for field_name in SECRET_FILE_FIELDS:
            variable = field_name.upper()
            path = environ.get(f"{variable}_FILE", "").strip()
            if not path:
                continue
            if environ.get(variable, "").strip():
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


class Settings(BaseSettings):
    """Every knob of the function; the field name upper-cased is the environment variable."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

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
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_json_depth: int = Field(default=32, ge=2, le=512)
    max_records_per_event: int = Field(default=100, gt=0)
    max_instances_per_event: int = Field(default=10, ge=1, le=100)

    # retries, idempotency and waiting
    deadline_seconds: float = Field(default=9.0, gt=0, le=3600)
    wait_for_completion: bool = False
    wait_timeout_seconds: float = Field(default=600.0, gt=0, le=86400)
    poll_interval_seconds: float = Field(default=10.0, ge=0.05, le=600)
    idempotency_window_days: float = Field(default=7.0, gt=0, le=365)
    clock_skew_seconds: float = Field(default=900.0, ge=0, le=86400)

    # retention
    retention_keep: int = Field(default=0, ge=0, le=1000)
    retention_min_age_hours: float = Field(default=24.0, ge=0, le=8760)

    # callbacks
    callback_url: str | None = None
    callback_secret: SecretStr | None = None
    callback_allowed_hosts: CommaList = Field(default_factory=list)
    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    callback_retry_seconds: float = Field(default=8.0, ge=0, le=600)

    # event sources
    event_types: CommaList = Field(default_factory=lambda: list(DEFAULT_EVENT_TYPES))
    smn_topic_urns: CommaList = Field(default_factory=list)
    smn_endpoint: str | None = None

    # authorization and mapping
    allowed_instances: CommaList = Field(default_factory=list)
    instance_map: dict[str, str] = Field(default_factory=dict)

    # logging
    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFiles(settings_cls), dotenv_settings)

    @field_validator(*SECRET_FILE_FIELDS)
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("webhook_secret", "callback_secret", "gitlab_webhook_signing_token")
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
                    "several are separated by spaces or commas"
                )
        return value

    # -- the values of rotating secrets, one per configured value -------------------------

    @property
    def webhook_secrets(self) -> list[str]:
        return _values(self.webhook_secret)

    @property
    def webhook_tokens(self) -> list[str]:
        return _values(self.webhook_token)

    @property
    def github_webhook_secrets(self) -> list[str]:
        return _values(self.github_webhook_secret)

    @property
    def gitlab_webhook_tokens(self) -> list[str]:
        return _values(self.gitlab_webhook_token)

    @property
    def gitlab_webhook_signing_tokens(self) -> list[str]:
        return _values(self.gitlab_webhook_signing_token)

    @property
    def callback_secrets(self) -> list[str]:
        return _values(self.callback_secret)

    def secret_values(self) -> list[str]:
        """Every configured secret in every form it may take in text, for redaction.

        Each value of a rotating list on its own, and a Standard Webhooks secret also without
        its ``whsec_`` prefix (the part that is the key).
        """
        found: set[str] = set()
        for field_name in SECRET_FILE_FIELDS:
            value: SecretStr | None = getattr(self, field_name)
            if value is None:
                continue
            text = value.get_secret_value()
            found.add(text)
            if field_name in _ROTATING_FIELDS:
                for part in split_values(text):
                    found.update({part, part.removeprefix("whsec_")})
        return sorted(found, key=len, reverse=True)

    @field_validator(
        "callback_allowed_hosts",
        "allowed_instances",
        "event_types",
        "smn_topic_urns",
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

    @field_validator("callback_allowed_hosts")
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
    def smn_base_url(self) -> str:
        """SMN endpoint of the region; certificate and confirmation URLs must be on its host."""
        url = self.smn_endpoint or f"https://smn.{self.os_region_name}.otc.t-systems.com"
        return url.rstrip("/")


def _values(value: SecretStr | None) -> list[str]:
    return split_values(value.get_secret_value()) if value is not None else []


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
    except ValueError as exc:
        # pydantic-settings reports undecodable JSON (INSTANCE_MAP) as a plain error naming
        # the field; name the variable and leave its value out.
        found = re.search(r'field "(\w+)"', str(exc))
        variable = found.group(1).upper() if found else "a setting"
        raise ConfigurationError(f"invalid configuration: {variable}: is not valid JSON") from None
