from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from job_service.models.base import Base
from job_service.models.types import BigIntId


class OutboxEntry(Base):
    """A job waiting to be published. Inserted in the job's transaction; deleted in the relay's
    transaction that published it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
