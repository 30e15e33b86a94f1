"""`/internal/v1/jobs`: authenticate (internal token, tenant header), parse, call the service."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import AwareDatetime

from conveyor_common import limits, tracing
from conveyor_common.internal import TenantDep
from conveyor_common.jobs import (
    BatchCreate,
    BatchRead,
    JobCreate,
    JobEventList,
    JobList,
    JobRead,
)
from conveyor_common.problems import (
    InvalidRequest,
    JobNotFound,
    MalformedBody,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from conveyor_common.statuses import JobStatus
from conveyor_common.submissions import SubmitEach, SubmitOutcome, SubmitOutcomes
from conveyor_common.web import IDEMPOTENCY_KEY_HEADER
from job_service.db import SessionDep, SubmitSessionDep, after_commit
from job_service.deps import CancelKeysDep, CatalogDep, RelayDep, SettingsDep, TimeLimitsDep
from job_service.jobs.errors import IdempotencyKeyInUse, JobAlreadyFinished, JobNotRetryable
from job_service.jobs.service import JobService

router = APIRouter(prefix="/internal/v1/jobs", tags=["jobs"])

SUBMIT_SPAN = "jobs.submit"

_WRITE_ERRORS = problem_responses(
    MalformedBody, Unauthorized, PayloadTooLarge, InvalidRequest, ServiceUnavailable
)


async def get_job_service(
    session: SessionDep, catalog: CatalogDep, time_limits: TimeLimitsDep, settings: SettingsDep
) -> JobService:
    return JobService(
        session,
        catalog,
        time_limits=time_limits,
        idempotency_retention=timedelta(seconds=settings.idempotency_retention_seconds),
    )


async def get_submit_service(
    session: SubmitSessionDep,
    catalog: CatalogDep,
    time_limits: TimeLimitsDep,
    settings: SettingsDep,
) -> JobService:
    return await get_job_service(session, catalog, time_limits, settings)


JobServiceDep = Annotated[JobService, Depends(get_job_service)]
SubmitServiceDep = Annotated[JobService, Depends(get_submit_service)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        min_length=1,
        max_length=limits.MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": JobRead, "description": "An earlier request with the same key and body"},
        **_WRITE_ERRORS,
    },
)
async def submit_job(
    body: JobCreate,
    tenant: TenantDep,
    service: SubmitServiceDep,
    relay: RelayDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobRead:
    # The submit span's context goes into the job row and from there into every message for
    # the job: the worker's span becomes its child. Off, `span` hands out a shared no-op.
    with tracing.span(SUBMIT_SPAN, kind=tracing.SpanKind.PRODUCER) as span:
        job, created = await service.submit(
            tenant,
            body,
            idempotency_key=idempotency_key,
            traceparent=tracing.current_traceparent(),
        )
        if span is not None:
            span.set_attributes(
                {"conveyor.job.id": str(job.id), "conveyor.task": job.task, "conveyor.jobs": 1}
            )
    if created:
        after_commit(service.session, relay.wake)
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.post(
    "/batch",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": BatchRead, "description": "An earlier request with the same key and body"},
        **_WRITE_ERRORS,
        **problem_responses(IdempotencyKeyInUse),
    },
)
async def submit_batch(
    body: BatchCreate,
    tenant: TenantDep,
    service: SubmitServiceDep,
    relay: RelayDep,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> BatchRead:
    with tracing.span(SUBMIT_SPAN, kind=tracing.SpanKind.PRODUCER) as span:
        jobs, created = await service.submit_batch(
            tenant,
            body,
            idempotency_key=idempotency_key,
            traceparent=tracing.current_traceparent(),
        )
        if span is not None:
            span.set_attribute("conveyor.jobs", len(jobs))
    if created:
        after_commit(service.session, relay.wake)
    else:
        response.status_code = status.HTTP_200_OK
    return BatchRead(jobs=jobs)


@router.post("/each", responses=_WRITE_ERRORS)
async def submit_each(
    body: SubmitEach, tenant: TenantDep, service: SubmitServiceDep, relay: RelayDep
) -> SubmitOutcomes:
    """Single submits the gateway coalesced (conveyor_common.submissions): one outcome per
    job, each as its own `POST /v1/jobs` would have been answered."""
    with tracing.span(SUBMIT_SPAN, kind=tracing.SpanKind.PRODUCER) as span:
        outcomes = await service.submit_each(tenant, body.jobs)
        if span is not None:
            span.set_attribute("conveyor.jobs", len(body.jobs))
    if any(isinstance(outcome, JobRead) for outcome in outcomes):
        after_commit(service.session, relay.wake)
    return SubmitOutcomes(
        outcomes=[
            SubmitOutcome(status=status.HTTP_202_ACCEPTED, job=outcome)
            if isinstance(outcome, JobRead)
            else SubmitOutcome(
                status=outcome.status, problem=outcome.to_problem(instance=router.prefix)
            )
            for outcome in outcomes
        ]
    )


@router.get("/{job_id}", responses=problem_responses(Unauthorized, JobNotFound))
async def get_job(job_id: uuid.UUID, tenant: TenantDep, service: JobServiceDep) -> JobRead:
    return await service.get(tenant, job_id)


@router.get("", responses=problem_responses(Unauthorized, InvalidRequest))
async def list_jobs(
    tenant: TenantDep,
    service: JobServiceDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    task: Annotated[str | None, Query(max_length=limits.MAX_NAME_LENGTH)] = None,
    queue: Annotated[str | None, Query(max_length=limits.MAX_NAME_LENGTH)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=limits.MAX_TAG_LENGTH)] = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = limits.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> JobList:
    return await service.list(
        tenant,
        limit=limit,
        cursor=cursor,
        status=status_,
        task=task,
        queue=queue,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
    )


@router.get("/{job_id}/events", responses=problem_responses(Unauthorized, JobNotFound))
async def job_events(job_id: uuid.UUID, tenant: TenantDep, service: JobServiceDep) -> JobEventList:
    return await service.events(tenant, job_id)


@router.post(
    "/{job_id}/cancel",
    responses=problem_responses(Unauthorized, JobNotFound, JobAlreadyFinished, ServiceUnavailable),
)
async def cancel_job(
    job_id: uuid.UUID,
    tenant: TenantDep,
    service: JobServiceDep,
    relay: RelayDep,
    cancel_keys: CancelKeysDep,
) -> JobRead:
    job = await service.cancel(tenant, job_id)

    async def signal_workers() -> None:
        await cancel_keys.write(job.id)

    after_commit(service.session, signal_workers)
    after_commit(service.session, relay.wake)
    return job


@router.post(
    "/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unauthorized, JobNotFound, JobNotRetryable, ServiceUnavailable),
)
async def retry_job(
    job_id: uuid.UUID, tenant: TenantDep, service: JobServiceDep, relay: RelayDep
) -> JobRead:
    job = await service.retry(tenant, job_id)
    after_commit(service.session, relay.wake)
    return job
