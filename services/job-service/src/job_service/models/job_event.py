from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conveyor_common import limits
from job_service.models.base import Base
from job_service.models.types import BigIntId


class JobEvent(Base):
    """One fact about one attempt: a worker's lifecycle event, or one of job-service's own
    (`cancelled`, `retried`, `replayed`, `republished`, a reconciler's `failed`). (job, cycle,
    attempt, type) is unique, so a redelivered stream entry adds no second row, while the same
    action in a later cycle (a second retry) is a row of its own."""

    __tablename__ = "job_events"
    __table_args__ = (
        UniqueConstraint("job_id", "cycle", "attempt", "type"),
        Index(None, "job_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    # The job's cycle when the fact was recorded.
    cycle: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    type: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    worker: Mapped[str | None] = mapped_column(String(limits.MAX_NAME_LENGTH))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error_type: Mapped[str | None] = mapped_column(String(limits.MAX_NAME_LENGTH))
    error_message: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]
