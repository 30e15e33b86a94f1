"""job-service settings (`CONVEYOR_*` variables)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from conveyor_common.api_keys import (
    DEFAULT_ROTATION_OVERLAP_SECONDS,
    MAX_ROTATION_OVERLAP_SECONDS,
)
from conveyor_common.settings import (
    BaseServiceSettings,
    CelerySettings,
    PostgresSettings,
    RedisSettings,
)
from job_service.jobs.idempotency import (
    DEFAULT_RETENTION_SECONDS,
    MAX_RETENTION_SECONDS,
    MIN_RETENTION_SECONDS,
)
from job_service.jobs.time_limits import TimeLimits

SERVICE_NAME = "job-service"
# Shown in pg_stat_activity and CLIENT LIST, so operators can tell our connections apart.
CONNECTION_NAME = "conveyor-job-service"
# Role names `migrate` grants to: plain identifiers only, so nothing odd ever reaches SQL (they
# are quoted as identifiers as well).
ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


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
    # After a read that did not fill a batch, wait this long for more events before applying
    # (events.py `_linger_for_more`): fewer, larger transactions while workers report steadily,
    # for this much more latency until a finished job shows SUCCEEDED. 0: apply at once.
    events_linger_ms: int = Field(default=50, ge=0, le=1_000)
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

    # How long a rotated API key keeps working next to its replacement when the request names
    # no overlap (`POST /v1/api-keys/{id}/rotate`, `rotate-api-key`).
    api_key_rotation_overlap_seconds: int = Field(
        default=DEFAULT_ROTATION_OVERLAP_SECONDS, ge=0, le=MAX_ROTATION_OVERLAP_SECONDS
    )

    # How long an Idempotency-Key answers the job it was first sent with (jobs/idempotency.py);
    # after that the same key submits a new job. Checked by `_check_idempotency_retention`.
    idempotency_retention_seconds: int = DEFAULT_RETENTION_SECONDS

    sqlite_busy_timeout_ms: int = 10_000
    shutdown_grace_seconds: float = 10.0

    @field_validator("idempotency_retention_seconds")
    @classmethod
    def _check_idempotency_retention(cls, value: int) -> int:
        # One message naming the variable and both bounds, rather than pydantic's ge/le wording.
        if not MIN_RETENTION_SECONDS <= value <= MAX_RETENTION_SECONDS:
            raise ValueError(
                "CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS must be from "
                f"{MIN_RETENTION_SECONDS} (one minute) to {MAX_RETENTION_SECONDS} (30 days)"
            )
        return value

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
    """What `migrate` needs: the database and logging, no service secrets.

    `CONVEYOR_DATABASE_MIGRATION_URL` connects as the role that owns the schema; without it
    `CONVEYOR_DATABASE_URL` is used (one role for everything: development, SQLite). With
    `CONVEYOR_DATABASE_APP_ROLE` set, every run grants that role what job-service needs and no
    more (grants.py)."""

    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    log_json: bool | None = None
    database_migration_url: SecretStr | None = None
    database_app_role: str | None = None

    @field_validator("database_migration_url", "database_app_role", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Templated manifests render an absent value as an empty string.
        return None if value == "" else value

    @field_validator("database_app_role")
    @classmethod
    def _check_role(cls, value: str | None) -> str | None:
        if value is not None and not ROLE_NAME.fullmatch(value):
            raise ValueError(
                "CONVEYOR_DATABASE_APP_ROLE must be a PostgreSQL role name of letters, digits "
                "and underscores, starting with a letter or underscore, at most 63 characters"
            )
        return value

    @property
    def migration_url(self) -> str:
        """Secret: the URL migrations connect with."""
        url = self.database_migration_url or self.database_url
        return url.get_secret_value()

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
