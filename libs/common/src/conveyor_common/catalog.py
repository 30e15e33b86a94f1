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


class TaskDescriptor(BaseModel):
    name: str
    description: str = ""
    input_schema: dict[str, Any]
    defaults: TaskDefaults = Field(default_factory=TaskDefaults)


class TaskCatalog(BaseModel):
    tasks: list[TaskDescriptor]
