"""Emulator settings: the fixed identity of the fake cloud, and the timings tests may tune."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_INSTANCE_ID = "07033b125fd94a8a96896f8bcfee6ddain07"


def _default_instances() -> tuple[str, ...]:
    # The documented example instance plus nine deterministic ids of the same shape.
    return (DEFAULT_INSTANCE_ID, *(f"{i:032x}in07" for i in range(1, 10)))


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator starts; immutable so reset() can always return to it."""

    host: str = "127.0.0.1"
    port: int = 0
    project_id: str = "619d3e78f61b4be68bc5aa0b59edcf7b"
    project_name: str = "eu-de"
    domain_name: str = "OTC-EU-DE-00000000001000000001"
    username: str = "demo"
    password: str = field(default="demo-password", repr=False)
    #: A permanent AK/SK pair of the user, for SDK-HMAC-SHA256 request signing.
    access_key: str = "EMULATORACCESSKEY001"
    secret_key: str = field(default="emulator-secret-key-0123456789abcdefghij", repr=False)
    #: Temporary AK/SK (as FunctionGraph agencies hand out): only with this security token.
    temporary_access_key: str = "EMULATORTEMPORARYAK1"
    temporary_secret_key: str = field(default="emulator-temporary-sk-0123456789abcdef", repr=False)
    security_token: str = field(default="emulator-security-token-0123456789", repr=False)
    instances: tuple[str, ...] = field(default_factory=_default_instances)
    backup_seconds: float = 2.0
    token_ttl_seconds: float = 86400.0
    job_visible_after_seconds: float = 0.0
    #: Seconds the emulated cloud's wall clock runs ahead of this machine's (negative: behind).
    clock_offset_seconds: float = 0.0
    #: Behave like an API that ignores ``begin_time``/``end_time`` of GET /backups (still
    #: validated, then not applied), so clients' fallbacks can be tested.
    ignore_time_filters: bool = False

    def function_env(self, url: str) -> dict[str, str]:
        """The function's cloud settings for this emulator at ``url``: IAM, the API, the
        emulator's user and project (docs/emulator.md). Secrets and the rest come on top."""
        return {
            "OS_AUTH_URL": f"{url}/v3",
            "GAUSSDB_ENDPOINT": url,
            "OS_USERNAME": self.username,
            "OS_PASSWORD": self.password,
            "OS_USER_DOMAIN_NAME": self.domain_name,
            "OS_PROJECT_ID": self.project_id,
        }


@dataclass
class Timing:
    """The knobs that POST /_emulator/config changes at run time."""

    backup_seconds: float
    token_ttl_seconds: float
    job_visible_after_seconds: float
    clock_offset_seconds: float = 0.0
    ignore_time_filters: bool = False

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Timing:
        return cls(
            backup_seconds=config.backup_seconds,
            token_ttl_seconds=config.token_ttl_seconds,
            job_visible_after_seconds=config.job_visible_after_seconds,
            clock_offset_seconds=config.clock_offset_seconds,
            ignore_time_filters=config.ignore_time_filters,
        )

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "backup_seconds": self.backup_seconds,
            "token_ttl_seconds": self.token_ttl_seconds,
            "job_visible_after_seconds": self.job_visible_after_seconds,
            "clock_offset_seconds": self.clock_offset_seconds,
            "ignore_time_filters": self.ignore_time_filters,
        }
