"""`/v1/jobs`: submit, read, list, fetch results and history, cancel and retry. Thin:
authenticate, validate, delegate."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from api_gateway.auth import Manager, Reader, Writer, call_context
from api_gateway.deps import JobsDep
from api_gateway.errors import (
    JobAlreadyFinished,
    JobCancelled,
    JobFailed,
    JobNotFinished,
    JobNotRetryable,
    ResultExpired,
)
from api_gateway.responses import AUTHENTICATED_ROUTE_PROBLEMS, relay
from conveyor_common import limits
from conveyor_common.jobs import (
    BatchCreate,
    BatchRead,
    JobCreate,
    JobEventList,
    JobList,
    JobRead,
    JobResult,
    QueueName,
    Tag,
    TaskName,
)
from conveyor_common.problems import (
    Conflict,
    InvalidRequest,
    JobNotFound,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    problem_responses,
)
from conveyor_common.statuses import JobStatus
from conveyor_common.web import IDEMPOTENCY_KEY_HEADER

router = APIRouter(prefix="/v1", tags=["jobs"])

_SUBMIT_PROBLEMS = (
    *AUTHENTICATED_ROUTE_PROBLEMS,
    MalformedBody,
    InvalidRequest,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        min_length=1,
        max_length=limits.MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=r"^[\x21-\x7e]+$",  # visible ASCII: it travels in headers and logs
        description=(
            "Submitting again with the same key and body returns what the first request "
            "accepted (`200`); the same key with another body is `422`. Keys are per tenant and "
            "deduplicate for the deployment's retention window (a day by default); after it "
            "the same key submits a new job."
        ),
    ),
]


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobRead,
    responses={
        200: {"model": JobRead, "description": "Accepted earlier with this Idempotency-Key"},
        **problem_responses(*_SUBMIT_PROBLEMS),
    },
    summary="Submit a job",
)
async def submit_job(
    job: JobCreate,
    principal: Writer,
    jobs: JobsDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    ctx = call_context(request, principal.tenant_id)
    relayed = await jobs.submit(job, ctx, idempotency_key)
    return relay(relayed, {"Location": f"/v1/jobs/{relayed.model.id}"})


@router.post(
    "/jobs/batch",
    status_code=202,
    response_model=BatchRead,
    responses={
        200: {"model": BatchRead, "description": "Accepted earlier with this Idempotency-Key"},
        **problem_responses(*_SUBMIT_PROBLEMS),
    },
    summary="Submit up to 1,000 jobs in one transaction",
    description=(
        "With an `Idempotency-Key`, job *i* of the batch carries the key `<key> #<i>` (its "
        "task's own key for its effects)."
    ),
)
async def submit_batch(
    batch: BatchCreate,
    principal: Writer,
    jobs: JobsDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    ctx = call_context(request, principal.tenant_id)
    return relay(await jobs.submit_batch(batch, ctx, idempotency_key))


@router.get(
    "/jobs",
    response_model=JobList,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS, InvalidRequest),
    summary="List jobs, newest first, in keyset pages",
)
async def list_jobs(
    principal: Reader,
    jobs: JobsDep,
    request: Request,
    status: JobStatus | None = None,
    task: Annotated[TaskName | None, Query()] = None,
    queue: Annotated[QueueName | None, Query()] = None,
    tag: Annotated[Tag | None, Query(description="Only jobs carrying this tag.")] = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = limits.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Response:
    params: dict[str, str] = {"limit": str(limit)}
    if status is not None:
        params["status"] = status.value
    if task is not None:
        params["task"] = task
    if queue is not None:
        params["queue"] = queue
    if tag is not None:
        params["tag"] = tag
    if created_after is not None:
        params["created_after"] = created_after.isoformat()
    if created_before is not None:
        params["created_before"] = created_before.isoformat()
    if cursor is not None:
        params["cursor"] = cursor
    return relay(await jobs.list(params, call_context(request, principal.tenant_id)))


@router.get(
    "/jobs/{job_id}",
    response_model=JobRead,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS, JobNotFound, InvalidRequest),
    summary="Read a job",
)
async def get_job(
    job_id: uuid.UUID, principal: Reader, jobs: JobsDep, request: Request
) -> Response:
    return relay(await jobs.get(job_id, call_context(request, principal.tenant_id)))


@router.get(
    "/jobs/{job_id}/result",
    response_model=JobResult,
    responses=problem_responses(
        *AUTHENTICATED_ROUTE_PROBLEMS,
        JobNotFound,
        JobNotFinished,
        JobFailed,
        JobCancelled,
        ResultExpired,
        InvalidRequest,
    ),
    summary="Read a succeeded job's result",
    description=(
        "`404` unknown job; `409 job-not-finished` while it runs; `409 job-failed` or "
        "`409 job-cancelled` with the job's error; `410 result-expired` when the job "
        "succeeded but its result is no longer stored."
    ),
)
async def get_job_result(
    job_id: uuid.UUID, principal: Reader, jobs: JobsDep, request: Request
) -> Response:
    return relay(await jobs.result(job_id, call_context(request, principal.tenant_id)))


@router.get(
    "/jobs/{job_id}/events",
    response_model=JobEventList,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS, JobNotFound, InvalidRequest),
    summary="Read a job's history, oldest first",
    description=(
        "Every attempt's lifecycle events (`received`, `started`, `succeeded`, `failed`, "
        "`skipped`) and the platform's own (`cancelled`, `retried`, `replayed`, ...)."
    ),
)
async def get_job_events(
    job_id: uuid.UUID, principal: Reader, jobs: JobsDep, request: Request
) -> Response:
    return relay(await jobs.events(job_id, call_context(request, principal.tenant_id)))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobRead,
    responses=problem_responses(
        *AUTHENTICATED_ROUTE_PROBLEMS, JobNotFound, JobAlreadyFinished, InvalidRequest
    ),
    summary="Cancel a job",
    description=(
        "A job not yet finished becomes `CANCELLED`: a queued job never runs, a running one is "
        "stopped. Cancelling a `CANCELLED` job again answers the same job; a job that "
        "`SUCCEEDED` or `FAILED` gets `409 job-already-finished` with `extra.status`."
    ),
)
async def cancel_job(
    job_id: uuid.UUID, principal: Manager, jobs: JobsDep, request: Request
) -> Response:
    return relay(await jobs.cancel(job_id, call_context(request, principal.tenant_id)))


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    response_model=JobRead,
    responses=problem_responses(
        *AUTHENTICATED_ROUTE_PROBLEMS, JobNotFound, JobNotRetryable, InvalidRequest
    ),
    summary="Run a failed or cancelled job again",
    description=(
        "A `FAILED` or `CANCELLED` job starts a new cycle of attempts (`PENDING`, next "
        "`cycle`; attempt numbers count on and the history is kept). Any other job gets "
        "`409 job-not-retryable` with `extra.status`."
    ),
)
async def retry_job(
    job_id: uuid.UUID, principal: Manager, jobs: JobsDep, request: Request
) -> Response:
    relayed = await jobs.retry(job_id, call_context(request, principal.tenant_id))
    return relay(relayed, {"Location": f"/v1/jobs/{relayed.model.id}"})
