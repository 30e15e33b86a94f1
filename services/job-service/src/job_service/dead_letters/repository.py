"""All SQL about dead letters: FAILED jobs whose `dead_letter_purged_at` is unset."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common.dead_letters import DeadLetterFilter
from conveyor_common.statuses import JobStatus
from job_service.models import Job


def _dead_letters(tenant_id: str | None = None) -> list[ColumnElement[bool]]:
    clauses = [Job.status == JobStatus.FAILED, Job.dead_letter_purged_at.is_(None)]
    if tenant_id is not None:
        clauses.append(Job.tenant_id == tenant_id)
    return clauses


def _matching(tenant_id: str, where: DeadLetterFilter) -> list[ColumnElement[bool]]:
    clauses = _dead_letters(tenant_id)
    if where.task is not None:
        clauses.append(Job.task == where.task)
    if where.queue is not None:
        clauses.append(Job.queue == where.queue)
    if where.error_type is not None:
        clauses.append(Job.error_type == where.error_type)
    if where.failed_after is not None:
        clauses.append(Job.finished_at > where.failed_after)
    if where.failed_before is not None:
        clauses.append(Job.finished_at < where.failed_before)
    return clauses


class DeadLetterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> Self:
        return cls(session)

    async def list(
        self,
        tenant_id: str,
        where: DeadLetterFilter,
        *,
        limit: int,
        before_id: uuid.UUID | None = None,
    ) -> Sequence[Job]:
        """Newest job first (UUIDv7 ids sort by submission): a keyset page after `before_id`."""
        stmt = select(Job).where(*_matching(tenant_id, where))
        if before_id is not None:
            stmt = stmt.where(Job.id < before_id)
        stmt = stmt.order_by(Job.id.desc()).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    async def get(self, tenant_id: str, job_id: uuid.UUID) -> Job | None:
        stmt = select(Job).where(Job.id == job_id, *_dead_letters(tenant_id))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock(self, tenant_id: str, job_ids: Sequence[uuid.UUID]) -> Sequence[Job]:
        """The dead letters among `job_ids`, locked in id order (so two callers can't deadlock)."""
        stmt = (
            select(Job)
            .where(Job.id.in_(list(job_ids)), *_dead_letters(tenant_id))
            .order_by(Job.id)
            .with_for_update()
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def purge_ids(self, tenant_id: str, job_ids: Sequence[uuid.UUID], now: datetime) -> int:
        stmt = (
            update(Job)
            .where(Job.id.in_(list(job_ids)), *_dead_letters(tenant_id))
            .values(dead_letter_purged_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(stmt))

    async def purge_matching(self, tenant_id: str, where: DeadLetterFilter, now: datetime) -> int:
        stmt = (
            update(Job)
            .where(*_matching(tenant_id, where))
            .values(dead_letter_purged_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(await self.session.execute(stmt))

    async def count_all(self) -> int:
        """Dead letters of every tenant (the `conveyor_dead_letters` gauge)."""
        stmt = select(func.count()).select_from(Job).where(*_dead_letters())
        return int((await self.session.execute(stmt)).scalar_one())


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0))
