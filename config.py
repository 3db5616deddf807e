"""Settings, read once from the environment.

The OpenStack names (``OS_*``) are the ones Open Telekom Cloud users already have in their
openrc. Secrets are ``SecretStr`` so that a stray ``repr`` or log line shows ``**********``.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

CommaList = Annotated[list[str], NoDecode]

DEFAULT_EVENT_TYPES = ("*pre-deploy", "*predeploy", "dev.knative.kafka.event")
"""CloudEvents types accepted unless ``EVENT_TYPES`` says otherwise (``*`` matches anything)."""


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

    # retries, idempotency and waiting
    deadline_seconds: float = Field(default=9.0, gt=0, le=3600)
    wait_for_completion: bool = False
    wait_timeout_seconds: float = Field(default=600.0, gt=0, le=86400)
    poll_interval_seconds: float = Field(default=10.0, ge=0.05, le=600)

    # several instances per event, retention
    max_instances_per_event: int = Field(default=10, ge=1, le=100)
    retention_keep: int = Field(default=0, ge=0, le=1000)

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

    @field_validator("webhook_secret", "callback_secret", "gitlab_webhook_signing_token")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value().removeprefix("whsec_")
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ValueError(
                "must be a Standard Webhooks secret: whsec_ followed by the base64 of at least "
                "16 random bytes (e.g. 'whsec_' + output of: openssl rand -base64 32)"
            )
        return value

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log filter that keeps them out of log lines."""
        candidates = (
            self.os_password,
            self.os_secret_key,
            self.os_security_token,
            self.webhook_secret,
            self.webhook_token,
            self.github_webhook_secret,
            self.gitlab_webhook_token,
            self.gitlab_webhook_signing_token,
            self.callback_secret,
        )
        return [c.get_secret_value() for c in candidates if c is not None]

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
