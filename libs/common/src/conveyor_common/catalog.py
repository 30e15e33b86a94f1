"""The task catalog workers advertise in Redis and job-service validates submissions against."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from conveyor_common import limits


class TaskDefaults(BaseModel):
    queue: str = "default"
    timeout_seconds: int = Field(
        default=limits.DEFAULT_TIMEOUT_SECONDS, ge=1, le=limits.MAX_TIMEOUT_SECONDS
    )
    max_attempts: int = Field(default=3, ge=1, le=limits.MAX_ATTEMPTS_CEILING)
    # Retry backoff: the delay before attempt n+1 is min(max, base x 2^(n-1)), with full jitter
    # (uniform between 0 and that) unless `retry_jitter` is off.
    retry_backoff_seconds: float = Field(default=2.0, ge=0, le=limits.MAX_RETRY_BACKOFF_SECONDS)
    retry_backoff_max_seconds: float = Field(
        default=300.0, ge=0, le=limits.MAX_RETRY_BACKOFF_SECONDS
    )
    retry_jitter: bool = True


class TaskDescriptor(BaseModel):
    name: str
    description: str = ""
    input_schema: dict[str, Any]
    defaults: TaskDefaults = Field(default_factory=TaskDefaults)


class TaskCatalog(BaseModel):
    tasks: list[TaskDescriptor]
