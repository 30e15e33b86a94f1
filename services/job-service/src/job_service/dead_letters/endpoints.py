"""`/internal/v1/dead-letters`: authenticate (internal token, tenant header), parse, call the
service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import AwareDatetime

from conveyor_common import limits
from conveyor_common.dead_letters import (
    DeadLetterFilter,
    DeadLetterIds,
    DeadLetterList,
    DeadLetterPurge,
    DeadLetterPurgeResult,
    DeadLetterRead,
    DeadLetterReplayResult,
)
from conveyor_common.internal import TenantDep
from conveyor_common.jobs import JobRead
from conveyor_common.problems import (
    InvalidRequest,
    MalformedBody,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from job_service.db import SessionDep, after_commit
from job_service.dead_letters.errors import DeadLetterNotFound
from job_service.dead_letters.service import DeadLetterService
from job_service.deps import RelayDep

router = APIRouter(prefix="/internal/v1/dead-letters", tags=["dead-letters"])

_ONE_ERRORS = problem_responses(Unauthorized, DeadLetterNotFound, ServiceUnavailable)
_BULK_ERRORS = problem_responses(Unauthorized, MalformedBody, InvalidRequest, ServiceUnavailable)


async def get_dead_letter_service(session: SessionDep) -> DeadLetterService:
    return DeadLetterService(session)


DeadLetterServiceDep = Annotated[DeadLetterService, Depends(get_dead_letter_service)]
NameQuery = Annotated[str | None, Query(max_length=limits.MAX_NAME_LENGTH)]


@router.get("", responses=problem_responses(Unauthorized, InvalidRequest, ServiceUnavailable))
async def list_dead_letters(
    tenant: TenantDep,
    service: DeadLetterServiceDep,
    task: NameQuery = None,
    queue: NameQuery = None,
    error_type: NameQuery = None,
    failed_after: AwareDatetime | None = None,
    failed_before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = limits.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> DeadLetterList:
    where = DeadLetterFilter(
        task=task,
        queue=queue,
        error_type=error_type,
        failed_after=failed_after,
        failed_before=failed_before,
    )
    return await service.list(tenant, where, limit=limit, cursor=cursor)


@router.post("/replay", status_code=status.HTTP_202_ACCEPTED, responses=_BULK_ERRORS)
async def replay_dead_letters(
    body: DeadLetterIds, tenant: TenantDep, service: DeadLetterServiceDep, relay: RelayDep
) -> DeadLetterReplayResult:
    result = await service.replay(tenant, body.ids)
    after_commit(service.session, relay.wake)
    return result


@router.post("/purge", responses=_BULK_ERRORS)
async def purge_dead_letters(
    body: DeadLetterPurge, tenant: TenantDep, service: DeadLetterServiceDep
) -> DeadLetterPurgeResult:
    return await service.purge(tenant, body)


@router.get("/{job_id}", responses=_ONE_ERRORS)
async def get_dead_letter(
    job_id: uuid.UUID, tenant: TenantDep, service: DeadLetterServiceDep
) -> DeadLetterRead:
    return await service.get(tenant, job_id)


@router.post("/{job_id}/replay", status_code=status.HTTP_202_ACCEPTED, responses=_ONE_ERRORS)
async def replay_dead_letter(
    job_id: uuid.UUID, tenant: TenantDep, service: DeadLetterServiceDep, relay: RelayDep
) -> JobRead:
    job = await service.replay_one(tenant, job_id)
    after_commit(service.session, relay.wake)
    return job


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ONE_ERRORS)
async def purge_dead_letter(
    job_id: uuid.UUID, tenant: TenantDep, service: DeadLetterServiceDep
) -> Response:
    await service.purge_one(tenant, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
