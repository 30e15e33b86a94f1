"""The job lifecycle. See docs/architecture.md for the diagram."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"  # run_at in the future; waits in PostgreSQL
    WAITING = "WAITING"  # waits for dependencies (workflows)
    PENDING = "PENDING"  # committed with its outbox row, not yet published
    QUEUED = "QUEUED"  # published to Redis
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"  # an attempt failed and another is due later
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # attempts spent: a dead letter
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# Within one attempt a job only moves forward through these ranks; an event that would move it
# backwards (a late or duplicate delivery) changes nothing.
STATUS_RANK: dict[JobStatus, int] = {
    JobStatus.SCHEDULED: 0,
    JobStatus.WAITING: 0,
    JobStatus.PENDING: 1,
    JobStatus.QUEUED: 2,
    JobStatus.RUNNING: 3,
    JobStatus.RETRYING: 4,
    JobStatus.SUCCEEDED: 5,
    JobStatus.FAILED: 5,
    JobStatus.CANCELLED: 5,
}
