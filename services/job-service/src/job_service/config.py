"""job-service settings (`CONVEYOR_*` variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from conveyor_common.settings import (
    BaseServiceSettings,
    CelerySettings,
    PostgresSettings,
    RedisSettings,
)

SERVICE_NAME = "job-service"
# Shown in pg_stat_activity and CLIENT LIST, so operators can tell our connections apart.
CONNECTION_NAME = "conveyor-job-service"


class Settings(BaseServiceSettings, PostgresSettings, RedisSettings, CelerySettings):
    port: int = 8001

    # Background loops. Tests drive them by hand with this off.
    background_tasks: bool = True

    relay_batch_size: int = Field(default=1_000, ge=1, le=5_000)
    relay_sweep_seconds: float = Field(default=1.0, gt=0)
    relay_backoff_max_seconds: float = Field(default=5.0, gt=0)
    # Added to a job's soft limit to get Celery's hard limit, so the task can clean up first.
    time_limit_grace_seconds: int = Field(default=30, ge=0)

    events_batch_size: int = Field(default=500, ge=1, le=5_000)
    events_block_ms: int = Field(default=1_000, ge=1)
    events_claim_idle_ms: int = Field(default=30_000, ge=1)
    events_claim_interval_seconds: float = Field(default=10.0, gt=0)
    events_backoff_max_seconds: float = Field(default=5.0, gt=0)

    promoter_interval_seconds: float = Field(default=0.5, gt=0)
    promoter_batch_size: int = Field(default=1_000, ge=1, le=5_000)

    retry_backoff_base_seconds: float = Field(default=2.0, gt=0)
    retry_backoff_cap_seconds: float = Field(default=600.0, gt=0)

    catalog_cache_seconds: float = Field(default=1.5, ge=0)

    sqlite_busy_timeout_ms: int = 10_000
    shutdown_grace_seconds: float = 10.0


class MigrationSettings(PostgresSettings):
    """What `migrate` needs: the database and logging, no service secrets."""

    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    log_json: bool | None = None

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
