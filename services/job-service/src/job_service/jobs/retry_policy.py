"""Where a retry is decided: how many attempts a job gets, how long it waits between them, and
which errors are never retried.

A job's policy is fixed when it is submitted (the task's catalog defaults, overridden by the
job's own fields) and stored on its row, so a worker advertising new defaults never changes the
jobs already accepted. The state machine asks `next_attempt_at` when an attempt fails.

- Attempts are counted per cycle: a retry or dead-letter replay starts a new cycle of
  `max_attempts` attempts, while attempt numbers keep counting (each names one attempt, ever).
- Backoff is exponential with "full jitter": the delay before attempt n+1 is uniform in
  [0, min(max, base x 2^(n-1))], so jobs that failed together (a dependency outage) spread out
  instead of retrying in lockstep. With `jitter` off it is exactly the bound.
- The delay waits in PostgreSQL (`RETRYING` with `next_attempt_at`) until the promoter makes
  the job PENDING again; it is never a broker ETA (pitfall #2).
- A permanent error never retries: an event with `retryable=False` (the worker's
  `PermanentError`, invalid arguments, an unknown task, a cancel), or, when the error is known
  only from its type (a failure read back from the result backend), one of
  `PERMANENT_ERROR_TYPES`. A lost worker and an exceeded time limit are ordinary, retryable
  attempt failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from conveyor_common.catalog import TaskDefaults
from conveyor_common.jobs import JobCreate

# Error types the worker reports as permanent (retryable=False).
PERMANENT_ERROR_TYPES = frozenset(
    {"PermanentError", "InvalidArguments", "InvalidEnvelope", "UnknownTask", "Cancelled"}
)
# Attempt failures job-service itself records (reconciler), and Celery's hard-limit kill.
WORKER_LOST = "WorkerLost"
TIME_LIMIT_EXCEEDED = "TimeLimitExceeded"

# 2^62 s is far past any cap; the exponent is bounded so the float never overflows.
_MAX_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    jitter: bool = True

    @classmethod
    def for_submission(cls, defaults: TaskDefaults, job: JobCreate) -> RetryPolicy:
        """The policy stored on a new job: the job's overrides, else the task's defaults."""
        return cls(
            max_attempts=job.max_attempts or defaults.max_attempts,
            backoff_seconds=(
                job.retry_backoff_seconds
                if job.retry_backoff_seconds is not None
                else defaults.retry_backoff_seconds
            ),
            backoff_max_seconds=(
                job.retry_backoff_max_seconds
                if job.retry_backoff_max_seconds is not None
                else defaults.retry_backoff_max_seconds
            ),
            jitter=defaults.retry_jitter,
        )

    def bound(self, attempt_in_cycle: int) -> float:
        """The longest delay after the `attempt_in_cycle`-th attempt (1-based) failed."""
        exponent = min(max(attempt_in_cycle - 1, 0), _MAX_EXPONENT)
        return max(0.0, min(self.backoff_max_seconds, self.backoff_seconds * 2.0**exponent))

    def delay(self, attempt_in_cycle: int, rand: float) -> timedelta:
        """`rand` is uniform in [0, 1): the caller owns the randomness, so this stays pure."""
        bound = self.bound(attempt_in_cycle)
        if self.jitter:
            bound *= min(max(rand, 0.0), 1.0)
        return timedelta(seconds=bound)

    def next_attempt_at(
        self,
        *,
        attempt_in_cycle: int,
        failed_at: datetime,
        error_type: str | None,
        retryable: bool | None,
        rand: float,
    ) -> datetime | None:
        """When the next attempt is due, or None when the job has failed for good (a permanent
        error, or the cycle's attempts are spent)."""
        if is_permanent(error_type, retryable):
            return None
        if attempt_in_cycle >= self.max_attempts:
            return None
        return failed_at + self.delay(attempt_in_cycle, rand)


def is_permanent(error_type: str | None, retryable: bool | None) -> bool:
    """`retryable` decides when the reporter said; the type only when it did not."""
    if retryable is not None:
        return not retryable
    return error_type in PERMANENT_ERROR_TYPES
