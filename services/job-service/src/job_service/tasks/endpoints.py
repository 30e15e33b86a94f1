from __future__ import annotations

from fastapi import APIRouter

from conveyor_common.catalog import TaskCatalog
from conveyor_common.internal import InternalCaller
from conveyor_common.problems import ServiceUnavailable, Unauthorized, problem_responses
from job_service.deps import CatalogDep

router = APIRouter(prefix="/internal/v1/tasks", tags=["tasks"])


@router.get("", responses=problem_responses(Unauthorized, ServiceUnavailable))
async def list_tasks(_caller: InternalCaller, catalog: CatalogDep) -> TaskCatalog:
    return await catalog.catalog()
