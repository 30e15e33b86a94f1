"""Rules of the dead letters: list them with their history, replay them as a new cycle of
attempts, purge them. Services flush; the request's session commits."""

from __future__ import annotations

import builtins
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common import limits
from conveyor_common.dead_letters import (
    DeadLetterFilter,
    DeadLetterList,
    DeadLetterPurge,
    DeadLetterPurgeResult,
    DeadLetterRead,
    DeadLetterReplayResult,
)
from conveyor_common.jobs import JobRead
from conveyor_common.problems import FieldError, InvalidRequest
from job_service.clock import utcnow
from job_service.dead_letters.errors import DeadLetterNotFound
from job_service.dead_letters.repository import DeadLetterRepository
from job_service.jobs.cursor import decode_cursor, encode_cursor
from job_service.jobs.history import Action
from job_service.jobs.repository import JobRepository
from job_service.jobs.service import event_read, read_from_orm, start_cycles
from job_service.models import Job, JobEvent


class DeadLetterService:
    def __init__(self, session: AsyncSession, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.repository = DeadLetterRepository.from_session(session)
        self.jobs = JobRepository.from_session(session)
        self.clock = clock

    async def list(
        self, tenant_id: str, where: DeadLetterFilter, *, limit: int, cursor: str | None = None
    ) -> DeadLetterList:
        _check_window(where)
        before_id = decode_cursor(cursor) if cursor is not None else None
        rows = await self.repository.list(tenant_id, where, limit=limit + 1, before_id=before_id)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
        return DeadLetterList(items=await self._reads(page), next_cursor=next_cursor)

    async def get(self, tenant_id: str, job_id: uuid.UUID) -> DeadLetterRead:
        job = await self.repository.get(tenant_id, job_id)
        if job is None:
            raise DeadLetterNotFound(f"Job {job_id} is not a dead letter.")
        [read] = await self._reads([job])
        return read

    async def replay_one(self, tenant_id: str, job_id: uuid.UUID) -> JobRead:
        jobs = await self.repository.lock(tenant_id, [job_id])
        if not jobs:
            raise DeadLetterNotFound(f"Job {job_id} is not a dead letter.")
        await start_cycles(self.jobs, jobs, Action.REPLAYED, self.clock())
        await self.session.refresh(jobs[0])
        return read_from_orm(jobs[0])

    async def replay(self, tenant_id: str, job_ids: Sequence[uuid.UUID]) -> DeadLetterReplayResult:
        """Each dead letter among `job_ids` starts a new cycle; the others are reported back."""
        wanted = list(dict.fromkeys(job_ids))
        jobs = await self.repository.lock(tenant_id, wanted)
        await start_cycles(self.jobs, jobs, Action.REPLAYED, self.clock())
        found = {job.id for job in jobs}
        return DeadLetterReplayResult(
            replayed=[job_id for job_id in wanted if job_id in found],
            not_found=[job_id for job_id in wanted if job_id not in found],
        )

    async def purge_one(self, tenant_id: str, job_id: uuid.UUID) -> None:
        if not await self.repository.purge_ids(tenant_id, [job_id], self.clock()):
            raise DeadLetterNotFound(f"Job {job_id} is not a dead letter.")

    async def purge(self, tenant_id: str, body: DeadLetterPurge) -> DeadLetterPurgeResult:
        now = self.clock()
        if body.ids is not None:
            purged = await self.repository.purge_ids(tenant_id, list(set(body.ids)), now)
        else:
            assert body.filter is not None  # the model requires one of them
            _check_window(body.filter, prefix="body.filter")
            purged = await self.repository.purge_matching(tenant_id, body.filter, now)
        return DeadLetterPurgeResult(purged=purged)

    async def _reads(self, jobs: Sequence[Job]) -> builtins.list[DeadLetterRead]:
        history: dict[uuid.UUID, list[JobEvent]] = defaultdict(list)
        for event in await self.jobs.list_job_events([job.id for job in jobs]):
            history[event.job_id].append(event)
        return [_read(job, history[job.id]) for job in jobs]


def _read(job: Job, history: Sequence[JobEvent]) -> DeadLetterRead:
    return DeadLetterRead(
        **read_from_orm(job).model_dump(),
        traceback=_capped(job.traceback),
        failed_at=job.finished_at or job.updated_at,
        history=[event_read(event) for event in history],
    )


def _capped(traceback: str | None) -> str | None:
    """The end of a traceback is where the error is, so that is the part kept."""
    limit = limits.MAX_TRACEBACK_LENGTH
    if traceback is None or len(traceback) <= limit:
        return traceback
    return "…" + traceback[-(limit - 1) :]


def _check_window(where: DeadLetterFilter, *, prefix: str = "query") -> None:
    if where.failed_after and where.failed_before and where.failed_after >= where.failed_before:
        raise InvalidRequest(
            "failed_after must be before failed_before",
            errors=[
                FieldError(field=f"{prefix}.failed_after", reason="must be before failed_before")
            ],
        )
