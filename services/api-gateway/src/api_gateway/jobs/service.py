"""What each `/v1/jobs` route asks of job-service and result-service.

Upstream answers are checked against the public models and then relayed as the bytes upstream
sent, so the gateway adds no re-serialisation to a 1,000-job batch. A batch answer is checked
against `BatchAccepted` (each job's id and status) rather than all of `BatchRead`: validating
1,000 full jobs again cost the gateway more than anything else it does for a batch."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from pydantic import BaseModel

from api_gateway.errors import JobCancelled, JobFailed, JobNotFinished, ResultExpired
from api_gateway.jobs.coalescer import SubmitCoalescer
from api_gateway.upstream import CallContext, Relayed, Upstream, UpstreamProblem
from conveyor_common import tracing
from conveyor_common.catalog import TaskCatalog
from conveyor_common.jobs import (
    BatchCreate,
    JobCreate,
    JobEventList,
    JobList,
    JobRead,
    JobResult,
)
from conveyor_common.problems import PROBLEM_TYPE_PREFIX
from conveyor_common.statuses import JobStatus
from conveyor_common.web import IDEMPOTENCY_KEY_HEADER

_RESULT_NOT_FOUND = PROBLEM_TYPE_PREFIX + "result-not-found"


class AcceptedJob(BaseModel):
    """What a client acts on in a batch answer: where each job is and what state it is in."""

    id: uuid.UUID
    status: JobStatus


class BatchAccepted(BaseModel):
    """The check of a batch answer (see the module docstring); the client gets `BatchRead`."""

    jobs: list[AcceptedJob]


class JobsGateway:
    def __init__(
        self,
        job_service: Upstream,
        result_service: Upstream,
        coalescer: SubmitCoalescer | None = None,
    ) -> None:
        self.job_service = job_service
        self.result_service = result_service
        self.coalescer = coalescer

    async def submit(
        self, job: JobCreate, ctx: CallContext, idempotency_key: str | None
    ) -> Relayed[JobRead]:
        if (
            self.coalescer is not None
            and idempotency_key is None
            and ctx.tenant_id is not None
            # Traced, a submit keeps its own call, so its job's trace runs through its own
            # job-service span.
            and not tracing.enabled()
        ):
            return await self.coalescer.submit(_json(job), ctx)
        headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key} if idempotency_key else None
        response = await self.job_service.request(
            "POST", "/internal/v1/jobs", ctx, content=_json(job), headers=headers
        )
        # 200 as well as 202: job-service may answer a replayed idempotency key with the job
        # it already accepted.
        return self.job_service.relay(response, JobRead, 200, 201, 202)

    async def submit_batch(
        self, batch: BatchCreate, ctx: CallContext, idempotency_key: str | None = None
    ) -> Relayed[BatchAccepted]:
        headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key} if idempotency_key else None
        response = await self.job_service.request(
            "POST", "/internal/v1/jobs/batch", ctx, content=_json(batch), headers=headers
        )
        return self.job_service.relay(response, BatchAccepted, 200, 201, 202)

    async def get(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[JobRead]:
        response = await self.job_service.request("GET", f"/internal/v1/jobs/{job_id}", ctx)
        return self.job_service.relay(response, JobRead, 200)

    async def list(self, params: Mapping[str, str], ctx: CallContext) -> Relayed[JobList]:
        response = await self.job_service.request("GET", "/internal/v1/jobs", ctx, params=params)
        return self.job_service.relay(response, JobList, 200)

    async def events(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[JobEventList]:
        response = await self.job_service.request("GET", f"/internal/v1/jobs/{job_id}/events", ctx)
        return self.job_service.relay(response, JobEventList, 200)

    async def cancel(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[JobRead]:
        response = await self.job_service.request("POST", f"/internal/v1/jobs/{job_id}/cancel", ctx)
        return self.job_service.relay(response, JobRead, 200)

    async def retry(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[JobRead]:
        response = await self.job_service.request("POST", f"/internal/v1/jobs/{job_id}/retry", ctx)
        return self.job_service.relay(response, JobRead, 202)

    async def tasks(self, ctx: CallContext) -> Relayed[TaskCatalog]:
        response = await self.job_service.request("GET", "/internal/v1/tasks", ctx)
        return self.job_service.relay(response, TaskCatalog, 200)

    async def result(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[JobResult]:
        """job-service is the record of whether the job exists, is the tenant's, and finished;
        the result backend is asked only for a job that succeeded (docs/decisions/0006)."""
        job = (await self.get(job_id, ctx)).model
        error = {"error": job.error.model_dump()} if job.error else None
        if job.status == JobStatus.FAILED:
            raise JobFailed(_error_detail(job, "failed"), extra=error)
        if job.status == JobStatus.CANCELLED:
            raise JobCancelled(_error_detail(job, "was cancelled"), extra=error)
        if job.status != JobStatus.SUCCEEDED:
            raise JobNotFinished(
                f"The job is {job.status}; its result exists once it has succeeded.",
                extra={"status": str(job.status)},
            )
        response = await self.result_service.request("GET", f"/internal/v1/results/{job_id}", ctx)
        try:
            return self.result_service.relay(response, JobResult, 200)
        except UpstreamProblem as problem:
            if problem.status == 404 and problem.body.get("type") == _RESULT_NOT_FOUND:
                raise ResultExpired(
                    "The job succeeded, but its result has expired from the result backend."
                ) from problem
            raise


def _json(model: BaseModel) -> bytes:
    # Only what the client set: job-service applies the task's defaults itself.
    return model.model_dump_json(exclude_unset=True).encode()


def _error_detail(job: JobRead, what: str) -> str:
    if job.error is None:
        return f"The job {what}."
    return f"The job {what}: {job.error.type}."
