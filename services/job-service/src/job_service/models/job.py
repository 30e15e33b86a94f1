from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Enum, Float, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from conveyor_common import limits
from conveyor_common.statuses import JobStatus
from job_service.models.base import Base
from job_service.models.types import JSONType

STATUS_TYPE = Enum(
    JobStatus,
    native_enum=False,
    length=16,
    values_callable=lambda enum: [member.value for member in enum],
    validate_strings=True,
    create_constraint=False,
)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        # Keyset listing, newest first, per tenant; and the same filtered by status/task/queue.
        Index(None, "tenant_id", "id"),
        Index(None, "tenant_id", "status", "id"),
        Index(None, "tenant_id", "task", "id"),
        Index(None, "tenant_id", "queue", "id"),
        # The promoter's due-job scans.
        Index(None, "status", "run_at"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(limits.MAX_NAME_LENGTH))
    queue: Mapped[str] = mapped_column(String(limits.MAX_NAME_LENGTH))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    args: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[JobStatus] = mapped_column(STATUS_TYPE)
    # The current (latest published) attempt; 0 until the relay first publishes the job.
    # Attempt numbers keep counting across cycles, so each one names one attempt, ever.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts allowed per cycle: a cycle ends FAILED after `prior_attempts + max_attempts`.
    max_attempts: Mapped[int] = mapped_column(Integer)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    # The retry policy, fixed at submit from the task's defaults and the job's overrides (see
    # jobs/retry_policy.py). Server defaults only fill rows that predate these columns.
    retry_backoff_seconds: Mapped[float] = mapped_column(Float, server_default="2")
    retry_backoff_max_seconds: Mapped[float] = mapped_column(Float, server_default="300")
    retry_jitter: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # 1, plus one per retry or dead-letter replay; `prior_attempts` is where the cycle began.
    cycle: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    prior_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tags: Mapped[list[str]] = mapped_column(JSONType)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(limits.MAX_IDEMPOTENCY_KEY_LENGTH))
    # sha256 of the submitted body, to tell a retried request from a reused key.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The W3C traceparent of the span that submitted the job (tracing on): every attempt's
    # message carries it, so one trace follows the job through retries.
    traceparent: Mapped[str | None] = mapped_column(String(limits.MAX_TRACEPARENT_LENGTH))
    error_type: Mapped[str | None] = mapped_column(String(limits.MAX_NAME_LENGTH))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    run_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    # Set when a dead letter (a FAILED job) is purged: it leaves the dead letters, the row stays.
    dead_letter_purged_at: Mapped[datetime | None]
