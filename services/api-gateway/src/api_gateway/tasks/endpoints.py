"""`/v1/tasks`: the catalog the workers advertise, with each task's input schema."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api_gateway.auth import Reader, call_context
from api_gateway.deps import JobsDep
from api_gateway.responses import AUTHENTICATED_ROUTE_PROBLEMS, relay
from conveyor_common.catalog import TaskCatalog
from conveyor_common.problems import problem_responses

router = APIRouter(prefix="/v1", tags=["tasks"])


@router.get(
    "/tasks",
    response_model=TaskCatalog,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS),
    summary="The task catalog",
)
async def list_tasks(principal: Reader, jobs: JobsDep, request: Request) -> Response:
    return relay(await jobs.tasks(call_context(request, principal.tenant_id)))
