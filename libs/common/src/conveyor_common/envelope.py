"""The one keyword argument every Conveyor Celery message carries.

job-service builds it from the job row when it publishes; the worker validates it before it
runs anything. Task names and this contract live here so job-service never imports worker code.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

ENVELOPE_KWARG = "job"


class TaskEnvelope(BaseModel):
    job_id: uuid.UUID
    tenant_id: str
    task: str
    attempt: int = Field(ge=1, description="Attempt number this message is for (fencing token).")
    args: dict[str, Any] = Field(default_factory=dict)
    queue: str = "default"
    timeout_seconds: int = Field(ge=1)
    idempotency_key: str | None = None
    traceparent: str | None = None


class JobContext(BaseModel):
    """What a task function may ask for to make its effects idempotent."""

    job_id: uuid.UUID
    tenant_id: str
    attempt: int
    idempotency_key: str | None = None
