"""job-service settings (`CONVEYOR_*` variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, model_validator

from conveyor_common.settings import (
    BaseServiceSettings,
    CelerySettings,
    PostgresSettings,
    RedisSettings,
)
from job_service.jobs.time_limits import TimeLimits

SERVICE_NAME = "job-service"
# Shown in pg_stat_activity and CLIENT LIST, so operators can tell our connections apart.
CONNECTION_NAME = "conveyor-job-service"


class Settings(BaseServiceSettings, PostgresSettings, RedisSettings, CelerySettings):
    port: int = 8001

    # Short timeouts: a request meeting a database or Redis that is down answers 503 within a
    # few seconds (never hangs). The Redis socket timeout must exceed `events_block_ms`.
    database_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    database_command_timeout_seconds: float = Field(default=10.0, gt=0)
    database_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    redis_socket_timeout: float = 3.0

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

    # The reconciler (reconciler.py). `lease_ttl_seconds` is the worker's setting of the same
    # name (CONVEYOR_LEASE_TTL_SECONDS): both sides must agree on it.
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    queued_republish_seconds: float = Field(default=300.0, gt=0)
    lease_ttl_seconds: float = Field(default=30.0, gt=0)
    reconcile_batch_size: int = Field(default=500, ge=1, le=5_000)

    # Operator gauges (gauges.py), refreshed by every replica alike.
    gauges_interval_seconds: float = Field(default=5.0, gt=0)

    catalog_cache_seconds: float = Field(default=1.5, ge=0)

    sqlite_busy_timeout_ms: int = 10_000
    shutdown_grace_seconds: float = 10.0

    @model_validator(mode="after")
    def _check_timeouts(self) -> Self:
        if self.redis_socket_timeout * 1000 <= self.events_block_ms:
            raise ValueError(
                "CONVEYOR_REDIS_SOCKET_TIMEOUT must be longer than CONVEYOR_EVENTS_BLOCK_MS, or "
                "every blocking stream read times out"
            )
        return self

    @property
    def time_limits(self) -> TimeLimits:
        """Derived from the visibility timeout the workers' Celery app uses
        (`CONVEYOR_MAX_TIMEOUT_SECONDS` + `CONVEYOR_VISIBILITY_MARGIN_SECONDS`)."""
        return TimeLimits.derive(
            max_timeout_seconds=self.max_timeout_seconds,
            grace_seconds=self.time_limit_grace_seconds,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
        )


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
