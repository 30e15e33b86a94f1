from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=256)


class VerifiedKey(BaseModel):
    tenant_id: str
    scopes: list[str]
    key_id: uuid.UUID
    # The gateway caches a positive answer no longer than this, so an expiry (a rotation's
    # overlap ending, say) takes effect on time rather than up to one cache period late.
    expires_at: datetime | None = None
