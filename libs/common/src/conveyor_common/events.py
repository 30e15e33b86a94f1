"""Lifecycle events: what workers append to the Redis stream and job-service applies.

Each event names the job, its tenant and the attempt it belongs to, so applying one twice, or
an older one after a newer one, changes nothing (see job-service's state machine)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from conveyor_common import limits


class EventType(StrEnum):
    RECEIVED = "received"  # a worker took the message off the queue
    STARTED = "started"  # the task function is about to run
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a redelivered message the worker refused to run (fenced)


class LifecycleEvent(BaseModel):
    job_id: uuid.UUID
    tenant_id: str
    attempt: int = Field(ge=1)
    type: EventType
    at: datetime
    task: str | None = None
    worker: str | None = None
    duration_ms: float | None = None
    error_type: str | None = Field(default=None, max_length=limits.MAX_NAME_LENGTH)
    error_message: str | None = Field(default=None, max_length=limits.MAX_ERROR_MESSAGE_LENGTH)
    traceback: str | None = Field(default=None, max_length=limits.MAX_TRACEBACK_LENGTH)
    retryable: bool | None = Field(
        default=None, description="False when the task raised a permanent error."
    )
    # W3C traceparent of the worker's task-run span (or of the message, with tracing off in the
    # worker), so job-service's spans for the event join the job's trace. Absent in events from
    # workers that predate it.
    traceparent: str | None = Field(default=None, max_length=limits.MAX_TRACEPARENT_LENGTH)

    def to_stream_fields(self) -> dict[str, str]:
        return {"e": self.model_dump_json(exclude_none=True)}

    @classmethod
    def from_stream_fields(
        cls, fields: Mapping[bytes, bytes] | Mapping[str, str]
    ) -> LifecycleEvent:
        raw = fields.get(b"e", fields.get("e"))  # type: ignore[call-overload]
        if raw is None:
            raise ValueError("stream entry has no `e` field")
        return cls.model_validate_json(raw)


def truncate(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
