"""All SQL about API keys. `tenant_id=None` means any tenant: only the operator's command line
asks that way; every HTTP route passes the caller's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Self

from sqlalchemy import Select, select
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

    async def get(self, key_id: uuid.UUID, tenant_id: str | None) -> ApiKey | None:
        return (await self.session.execute(_one(key_id, tenant_id))).scalar_one_or_none()

    async def lock(self, key_id: uuid.UUID, tenant_id: str | None) -> ApiKey | None:
        """The key, locked until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE
        already serialises writers), so two rotations or a rotation and a revocation of one key
        happen one after the other."""
        stmt = _one(key_id, tenant_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def successor(self, key_id: uuid.UUID) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.rotated_from == key_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(
        self, tenant_id: str, *, limit: int, before_id: uuid.UUID | None = None
    ) -> Sequence[ApiKey]:
        """Newest key first (UUIDv7 ids sort by creation): a keyset page after `before_id`."""
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
        if before_id is not None:
            stmt = stmt.where(ApiKey.id < before_id)
        stmt = stmt.order_by(ApiKey.id.desc()).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()


def _one(key_id: uuid.UUID, tenant_id: str | None) -> Select[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.id == key_id)
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    return stmt
