"""Coalesced submits: a tenant's single `POST /v1/jobs` requests that arrive while its earlier
ones are still upstream go to job-service together, as one call that stores them in one
statement (conveyor_common.submissions, docs/decisions/0022).

No timer: a submit that finds a free call slot is sent at once, alone, so a quiet tenant's
latency is that of a plain call. Only submits that would otherwise queue behind calls in
flight share the next call, so the busier the tenant, the bigger the calls and the less each
submit costs (job-service's request handling and a commit are paid once per call, not per job).

Each submit still gets its own answer: its job, or the problem its own call would have got.
A failure of the whole call (job-service down, a timeout) is every submit's failure, as it
would have been for each alone. The calls run as their own tasks: a client that disconnects
cancels only its own wait, never a call that carries other clients' jobs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from api_gateway.upstream import CallContext, Relayed, Upstream, UpstreamProblem
from conveyor_common import limits
from conveyor_common.jobs import JobRead
from conveyor_common.problems import BadGateway, ServiceUnavailable
from conveyor_common.submissions import SubmitOutcome, SubmitOutcomes

SUBMIT_EACH_PATH = "/internal/v1/jobs/each"


@dataclass(slots=True)
class _Waiting:
    body: bytes  # the job as JSON
    ctx: CallContext
    answer: asyncio.Future[Relayed[JobRead]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class _TenantLine:
    waiting: list[_Waiting] = field(default_factory=list)
    calls: int = 0  # calls in flight


class SubmitCoalescer:
    def __init__(self, job_service: Upstream, *, calls_per_tenant: int, max_jobs: int = 0) -> None:
        if calls_per_tenant < 1:
            raise ValueError("calls_per_tenant must be at least 1")
        self._job_service = job_service
        self._calls_per_tenant = calls_per_tenant
        self._max_jobs = max_jobs or limits.MAX_BATCH_SIZE
        self._lines: dict[str, _TenantLine] = {}
        self._calls: set[asyncio.Task[None]] = set()

    async def submit(self, job_json: bytes, ctx: CallContext) -> Relayed[JobRead]:
        """The job, as job-service accepted it (202), or raises what its own call would have."""
        if ctx.tenant_id is None:
            raise ValueError("a coalesced submit needs its tenant")
        line = self._lines.setdefault(ctx.tenant_id, _TenantLine())
        waiting = _Waiting(job_json, ctx)
        line.waiting.append(waiting)
        if line.calls < self._calls_per_tenant:
            line.calls += 1
            call = asyncio.create_task(self._call_while_waiting(ctx.tenant_id, line))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)
        return await waiting.answer

    async def aclose(self) -> None:
        """Waits for the calls in flight (their clients are still waiting for them)."""
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

    async def _call_while_waiting(self, tenant_id: str, line: _TenantLine) -> None:
        try:
            while batch := self._take(line):
                await self._call(batch)
        finally:
            line.calls -= 1
            if line.calls == 0 and not line.waiting:
                # Tenants come and go: keep no line for one with nothing in flight.
                self._lines.pop(tenant_id, None)

    def _take(self, line: _TenantLine) -> list[_Waiting]:
        # A submit whose client went away is left out: nobody would learn its job's id.
        live = [waiting for waiting in line.waiting if not waiting.answer.done()]
        batch, line.waiting = live[: self._max_jobs], live[self._max_jobs :]
        return batch

    async def _call(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self._send(batch)
        except asyncio.CancelledError:
            for waiting in batch:
                _settle(waiting, failure=ServiceUnavailable("The gateway is shutting down."))
            raise
        except Exception as failure:
            for waiting in batch:
                _settle(waiting, failure=failure)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if outcome.job is not None:
                accepted = Relayed(202, outcome.job.model_dump_json().encode(), outcome.job)
                _settle(waiting, accepted=accepted)
            else:
                assert outcome.problem is not None  # one of the two, by SubmitOutcome's check
                problem = outcome.problem.model_dump(mode="json", exclude_none=True)
                _settle(waiting, failure=UpstreamProblem(outcome.status, problem, {}))

    async def _send(self, batch: list[_Waiting]) -> list[SubmitOutcome]:
        body = b'{"jobs":[' + b",".join(waiting.body for waiting in batch) + b"]}"
        # The first submit's context (request id) travels with the call; the tenant is theirs
        # all alike.
        response = await self._job_service.request(
            "POST", SUBMIT_EACH_PATH, batch[0].ctx, content=body
        )
        self._job_service.check(response, 200)
        outcomes = self._job_service.parse(response, SubmitOutcomes).outcomes
        if len(outcomes) != len(batch):
            raise BadGateway(f"The {self._job_service.name} answered outside its contract.")
        return outcomes


def _settle(
    waiting: _Waiting,
    *,
    accepted: Relayed[JobRead] | None = None,
    failure: Exception | None = None,
) -> None:
    if waiting.answer.done():  # its client went away meanwhile
        return
    if failure is not None:
        waiting.answer.set_exception(failure)
    else:
        assert accepted is not None
        waiting.answer.set_result(accepted)
