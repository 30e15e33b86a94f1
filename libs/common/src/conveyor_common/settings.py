"""Settings base: every service's `Settings` subclasses `BaseServiceSettings` (plus the
`RedisSettings`/`PostgresSettings` mixins it needs), reads `CONVEYOR_*` variables, and is built
once by a cached `get_settings()` that `create_app(settings)` receives."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor_common import limits

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "dev-internal-token", "secret"})
DEV_INTERNAL_TOKEN = "dev-internal-token"

INTERNAL_TOKEN_HEADER = "X-Conveyor-Internal-Token"
TENANT_HEADER = "X-Conveyor-Tenant"
SCOPES_HEADER = "X-Conveyor-Scopes"


# Every settings class carries the same config: pydantic merges `model_config` across bases in
# order, so a mixin left with BaseSettings' defaults would reset `env_prefix` to "" in
# `class Settings(BaseServiceSettings, RedisSettings)` and every CONVEYOR_* variable would be
# silently ignored.
SETTINGS_CONFIG = SettingsConfigDict(
    env_prefix="CONVEYOR_", env_file=None, extra="ignore", secrets_dir=None
)


class BaseServiceSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON log lines; defaults to on outside development."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # The shared secret the gateway presents to job-service and result-service.
    internal_token: SecretStr = SecretStr(DEV_INTERNAL_TOKEN)

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        for name, value in self.secret_fields().items():
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"CONVEYOR_{name.upper()} is unset or a placeholder; set a real secret "
                    f"outside development (environment={self.environment})"
                )
        return self

    def secret_fields(self) -> dict[str, SecretStr]:
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }


class RedisSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Prefix of every key, stream and queue in Redis (see redis_keys.RedisKeys).
    redis_namespace: str = "conveyor"
    redis_socket_timeout: float = 5.0
    redis_connect_timeout: float = 2.0


class PostgresSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///.conveyor/conveyor.db")
    database_pool_size: int = 10


class CelerySettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    result_ttl_seconds: int = 86_400
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS
