"""`GET /internal/v1/results/{job_id}`: the gateway's only route here."""

from __future__ import annotations

import uuid

import structlog
from fastapi import APIRouter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor_common.internal import TenantDep
from conveyor_common.jobs import JobResult
from conveyor_common.problems import ServiceUnavailable, Unauthorized, problem_responses
from result_service.deps import RepositoryDep, SettingsDep
from result_service.errors import (
    JobFailed,
    JobNotFinished,
    ResultNotFound,
    StoredResultUnreadable,
)
from result_service.results.records import outcome

log = structlog.get_logger("result_service.results")

router = APIRouter(prefix="/internal/v1", tags=["results"])


@router.get(
    "/results/{job_id}",
    response_model=JobResult,
    responses=problem_responses(
        Unauthorized,
        ResultNotFound,
        JobNotFinished,
        JobFailed,
        StoredResultUnreadable,
        ServiceUnavailable,
    ),
)
async def read_result(
    job_id: uuid.UUID, tenant: TenantDep, repository: RepositoryDep, settings: SettingsDep
) -> JobResult:
    key_id = str(job_id)
    try:
        raw = await repository.get_record(key_id)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("results.redis_unavailable", job_id=key_id, error=type(exc).__name__)
        raise ServiceUnavailable(
            "The result backend is unreachable.", retry_after=settings.retry_after_seconds
        ) from exc
    except RedisError as exc:
        # The server answered with an error (e.g. WRONGTYPE): the key holds something we never
        # wrote, which is a data problem, not an outage.
        log.error("results.redis_error", job_id=key_id, error=type(exc).__name__)
        raise StoredResultUnreadable("The result backend refused the read.") from exc
    try:
        success = outcome(raw, job_id=key_id, tenant_id=tenant)
    except StoredResultUnreadable as exc:
        log.error("results.unreadable", job_id=key_id, reason=exc.detail)
        raise
    return JobResult(job_id=job_id, result=success.value)
