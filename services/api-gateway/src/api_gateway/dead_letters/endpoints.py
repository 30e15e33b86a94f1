"""`/v1/dead-letters`: jobs that ended `FAILED` (attempts spent, or a permanent error), with
their last error and every attempt's history; replayed as a new cycle of attempts, or purged.
Thin: authenticate, validate, delegate.

Reading needs `jobs:read` and replaying `jobs:manage` (as retrying a job does); purging needs
`admin`: it drops failures from the list operators work from, for every key of the tenant."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from api_gateway.auth import Admin, Manager, Reader, call_context
from api_gateway.deps import DeadLettersDep
from api_gateway.errors import DeadLetterNotFound
from api_gateway.responses import AUTHENTICATED_ROUTE_PROBLEMS, relay
from conveyor_common import limits
from conveyor_common.dead_letters import (
    DeadLetterIds,
    DeadLetterList,
    DeadLetterPurge,
    DeadLetterPurgeResult,
    DeadLetterRead,
    DeadLetterReplayResult,
)
from conveyor_common.jobs import JobRead, QueueName, TaskName
from conveyor_common.problems import (
    InvalidRequest,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    problem_responses,
)

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

_ONE_PROBLEMS = (*AUTHENTICATED_ROUTE_PROBLEMS, DeadLetterNotFound, InvalidRequest)
_BULK_PROBLEMS = (
    *AUTHENTICATED_ROUTE_PROBLEMS,
    MalformedBody,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)


@router.get(
    "",
    response_model=DeadLetterList,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS, InvalidRequest),
    summary="List dead letters, newest job first, in keyset pages",
)
async def list_dead_letters(
    principal: Reader,
    dead_letters: DeadLettersDep,
    request: Request,
    task: Annotated[TaskName | None, Query()] = None,
    queue: Annotated[QueueName | None, Query()] = None,
    error_type: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=limits.MAX_NAME_LENGTH,
            description="The last error's type, e.g. `TimeLimitExceeded` or `WorkerLost`.",
        ),
    ] = None,
    failed_after: AwareDatetime | None = None,
    failed_before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = limits.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Response:
    params: dict[str, str] = {"limit": str(limit)}
    for name, value in (("task", task), ("queue", queue), ("error_type", error_type)):
        if value is not None:
            params[name] = value
    if failed_after is not None:
        params["failed_after"] = failed_after.isoformat()
    if failed_before is not None:
        params["failed_before"] = failed_before.isoformat()
    if cursor is not None:
        params["cursor"] = cursor
    ctx = call_context(request, principal.tenant_id)
    return relay(await dead_letters.list(params, ctx))


@router.post(
    "/replay",
    status_code=202,
    response_model=DeadLetterReplayResult,
    responses=problem_responses(*_BULK_PROBLEMS),
    summary="Replay up to 1,000 dead letters",
    description=(
        "Each id that is a dead letter starts a new cycle of attempts and is listed in "
        "`replayed`; the others are left alone and listed in `not_found`."
    ),
)
async def replay_dead_letters(
    body: DeadLetterIds, principal: Manager, dead_letters: DeadLettersDep, request: Request
) -> Response:
    ctx = call_context(request, principal.tenant_id)
    return relay(await dead_letters.replay(body, ctx))


@router.post(
    "/purge",
    response_model=DeadLetterPurgeResult,
    responses=problem_responses(*_BULK_PROBLEMS),
    summary="Purge dead letters by id or by filter (admin)",
    description=(
        'Give `{"ids": [...]}` (1-1,000) or `{"filter": {...}}` (`{}` purges every dead '
        "letter). Purged jobs leave the dead letters; their records and history stay."
    ),
)
async def purge_dead_letters(
    body: DeadLetterPurge, principal: Admin, dead_letters: DeadLettersDep, request: Request
) -> Response:
    ctx = call_context(request, principal.tenant_id)
    return relay(await dead_letters.purge(body, ctx))


@router.get(
    "/{job_id}",
    response_model=DeadLetterRead,
    responses=problem_responses(*_ONE_PROBLEMS),
    summary="Read a dead letter, with its traceback and every attempt's history",
)
async def get_dead_letter(
    job_id: uuid.UUID, principal: Reader, dead_letters: DeadLettersDep, request: Request
) -> Response:
    return relay(await dead_letters.get(job_id, call_context(request, principal.tenant_id)))


@router.post(
    "/{job_id}/replay",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(*_ONE_PROBLEMS),
    summary="Replay a dead letter as a new cycle of attempts",
)
async def replay_dead_letter(
    job_id: uuid.UUID, principal: Manager, dead_letters: DeadLettersDep, request: Request
) -> Response:
    ctx = call_context(request, principal.tenant_id)
    relayed = await dead_letters.replay_one(job_id, ctx)
    return relay(relayed, {"Location": f"/v1/jobs/{relayed.model.id}"})


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(*_ONE_PROBLEMS),
    summary="Purge one dead letter (admin)",
)
async def purge_dead_letter(
    job_id: uuid.UUID, principal: Admin, dead_letters: DeadLettersDep, request: Request
) -> Response:
    await dead_letters.purge_one(job_id, call_context(request, principal.tenant_id))
    return Response(status_code=204)
