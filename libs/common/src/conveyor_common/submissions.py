"""The contract of coalesced submits between the gateway and job-service.

The gateway sends single `POST /v1/jobs` requests of one tenant that arrive while another of
its calls is in flight as one call, `POST /internal/v1/jobs/each`; job-service stores the valid
ones in one statement. Unlike a batch (all or nothing), each job is judged on its own: one
outcome per job, in order, either the accepted job or the problem its own request would have
got (docs/decisions/0022)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from conveyor_common import limits
from conveyor_common.jobs import JobCreate, JobRead
from conveyor_common.problems import Problem


class SubmitEach(BaseModel):
    jobs: list[JobCreate] = Field(min_length=1, max_length=limits.MAX_BATCH_SIZE)


class SubmitOutcome(BaseModel):
    """202 and the job, or the status and problem of a refused submit."""

    status: int = Field(ge=200, le=599)
    job: JobRead | None = None
    problem: Problem | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SubmitOutcome:
        if (self.job is None) == (self.problem is None):
            raise ValueError("an outcome holds either a job or a problem")
        return self


class SubmitOutcomes(BaseModel):
    outcomes: list[SubmitOutcome]
