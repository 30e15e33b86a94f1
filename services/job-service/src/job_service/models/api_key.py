from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from job_service.models.base import Base
from job_service.models.types import JSONType


class ApiKey(Base):
    """An API key: the public prefix finds the row, only sha256(secret) is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # The key this one replaced by rotation. Unique: a key is rotated at most once (rotate its
    # replacement next time), which also makes two concurrent rotations of one key fail.
    rotated_from: Mapped[uuid.UUID | None] = mapped_column(index=True, unique=True)
