from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=256)


class VerifiedKey(BaseModel):
    tenant_id: str
    scopes: list[str]
    key_id: uuid.UUID
