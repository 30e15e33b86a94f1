"""Worker settings (`CONVEYOR_*` environment variables)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from conveyor_common.redis_keys import RedisKeys
from conveyor_common.settings import BaseServiceSettings, CelerySettings, RedisSettings
from conveyor_worker.builtin.http_request import DEFAULT_MAX_RESPONSE_BYTES, HttpPolicy
from conveyor_worker.builtin.netguard import parse_allowed_hosts
from conveyor_worker.events import DEFAULT_STREAM_MAXLEN

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseServiceSettings, RedisSettings, CelerySettings):
    model_config = SettingsConfigDict(
        env_prefix="CONVEYOR_",
        env_file=None,
        extra="ignore",
        secrets_dir=None,
        populate_by_name=True,
    )

    # Each worker option also answers to a `CONVEYOR_WORKER_*` name, which is what a shared
    # configuration (compose, a ConfigMap) uses to keep it apart from the services' options.
    port: int = Field(
        default=8003,
        ge=0,
        le=65_535,
        validation_alias=AliasChoices("CONVEYOR_WORKER_HEALTH_PORT", "CONVEYOR_PORT"),
        description="Health and metrics HTTP port; 0 turns it off.",
    )
    queues: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("CONVEYOR_WORKER_QUEUES", "CONVEYOR_QUEUES"),
        description="Queues to consume; empty means every queue the registry's tasks use, "
        "plus `default`.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("CONVEYOR_WORKER_CONCURRENCY", "CONVEYOR_CONCURRENCY"),
        description="Defaults to the CPU count.",
    )
    pool: Literal["prefork", "solo", "threads"] = Field(
        default="prefork",
        validation_alias=AliasChoices("CONVEYOR_WORKER_POOL", "CONVEYOR_POOL"),
    )
    worker_name: str | None = Field(
        default=None, description="Celery node name; defaults to `conveyor@<host>-<pid>`."
    )
    task_modules: CommaList = Field(
        default_factory=list, description="Extra modules defining a TaskRegistry."
    )
    http_allowed_hosts: CommaList = Field(
        default_factory=list,
        description="`host` or `host:port` entries `http.request` may reach even when they "
        "resolve to loopback or private addresses.",
    )
    http_max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=0)
    events_stream_maxlen: int = Field(default=DEFAULT_STREAM_MAXLEN, ge=1_000)
    heartbeat_interval_seconds: float = Field(default=10.0, gt=0)
    worker_ttl_seconds: int = Field(default=30, ge=2)
    lease_ttl_seconds: int = Field(
        default=30,
        ge=2,
        description="Lifetime of an attempt's lease, renewed every third of it while the task "
        "runs; the same setting job-service's reconciler reads.",
    )
    cancel_check_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the lease heartbeat looks for a cancel (and renews) while tasks "
        "run, when that is more often than every third of the lease TTL.",
    )
    shutdown_grace_seconds: float | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS"),
        description="After SIGTERM, how long running tasks may go on before the worker exits "
        "hard; by default the longest hard time limit plus 30 s.",
    )

    @field_validator("queues", "task_modules", "http_allowed_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("http_allowed_hosts")
    @classmethod
    def _valid_hosts(cls, value: list[str]) -> list[str]:
        parse_allowed_hosts(value)  # raises ValueError on a malformed entry
        return value

    def secret_fields(self) -> dict[str, SecretStr]:
        # Workers call no Conveyor service, so they need no internal token.
        fields = super().secret_fields()
        fields.pop("internal_token", None)
        return fields

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.redis_namespace)

    @property
    def lease_tick_seconds(self) -> float:
        return min(self.lease_ttl_seconds / 3, self.cancel_check_interval_seconds)

    @property
    def fence_ttl_seconds(self) -> int:
        # A kombu redelivery comes at most about one visibility timeout after the first
        # delivery; the fence must outlive it to turn it into a skip.
        return 2 * self.visibility_timeout_seconds

    def shutdown_grace(self, hard_time_limit_ceiling: float) -> float:
        """The grace after SIGTERM; by default Celery's hard time limit ceiling (the app's
        `task_time_limit`) plus 30 s to report, so the longest task finishes, and the pod's own
        grace (3,700 s in deploy/) is not reached."""
        if self.shutdown_grace_seconds is not None:
            return self.shutdown_grace_seconds
        return hard_time_limit_ceiling + 30

    @property
    def effective_concurrency(self) -> int:
        if self.pool == "solo":
            return 1
        return self.concurrency or os.cpu_count() or 1

    def effective_queues(self, registry_queues: list[str]) -> list[str]:
        if self.queues:
            return list(dict.fromkeys(self.queues))
        return list(dict.fromkeys([*registry_queues, "default"]))

    def http_policy(self) -> HttpPolicy:
        return HttpPolicy(
            allowed_hosts=parse_allowed_hosts(self.http_allowed_hosts),
            max_response_bytes=self.http_max_response_bytes,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
