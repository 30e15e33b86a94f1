from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from job_service.models import ApiKey


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> Self:
        return cls(session)

    async def add(self, key: ApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def by_prefix(self, prefix: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.prefix == prefix)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> bool:
        stmt = (
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0)) > 0
