"""Where a job's status is decided from a worker's lifecycle event, and where a retry is decided.

Pure functions: no I/O, no clock, no randomness of their own (the caller passes the jitter), so
every rule is unit-testable and re-applying an event after a crash is harmless.

The rules:
- final statuses (SUCCEEDED, FAILED, CANCELLED) never change;
- an event for an older attempt than the job's current one changes nothing; an event for a
  newer attempt is accepted by advancing the job to that attempt;
- a job that is PENDING/SCHEDULED/WAITING between attempts has finished its current attempt,
  so a late event for that attempt is stale too;
- within an attempt a job only moves forward by `STATUS_RANK`, so duplicates and out-of-order
  deliveries (succeeded before started) change nothing;
- `started` -> RUNNING; `succeeded` -> SUCCEEDED; `failed` -> RETRYING with `next_attempt_at`
  when the job's retry policy (`retry_policy.py`) allows another attempt, else FAILED (a dead
  letter); `received` and `skipped` (a fenced redelivery) change no state. A `failed` event
  with `WorkerLost` (from the reconciler) or `TimeLimitExceeded` is an ordinary attempt failure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.statuses import STATUS_RANK, JobStatus
from job_service.jobs.retry_policy import RetryPolicy

# Statuses in which the job's `attempts` counts an attempt that is over (or none yet).
_BETWEEN_ATTEMPTS = frozenset({JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.WAITING})


@dataclass(frozen=True, slots=True)
class JobState:
    """The fields of a job row the state machine reads and writes."""

    status: JobStatus
    attempts: int
    policy: RetryPolicy
    prior_attempts: int = 0  # attempts of earlier cycles (retries, replays)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


def apply_event(state: JobState, event: LifecycleEvent, *, jitter: float) -> JobState | None:
    """The job's new state after `event`, or None when the event changes nothing. `jitter` is
    uniform in [0, 1) and spreads the retry delay (see `RetryPolicy.delay`)."""
    if state.status.is_final or event.type == EventType.SKIPPED:
        # A skip is a redelivery the worker's fence refused: it says nothing about the job,
        # not even that a newer attempt exists.
        return None
    if event.attempt < state.attempts:
        return None
    if event.attempt == state.attempts and state.status in _BETWEEN_ATTEMPTS:
        return None
    if event.attempt > state.attempts:
        # The job row lags the worker (e.g. a publish the row doesn't know about): take the
        # event's attempt as current, as if its message had just been queued.
        state = dataclasses.replace(state, status=JobStatus.QUEUED, attempts=event.attempt)
        advanced = True
    else:
        advanced = False

    target = _target(state, event, jitter=jitter)
    if target is None:
        return state if advanced else None
    if STATUS_RANK[target.status] <= STATUS_RANK[state.status]:
        return state if advanced else None
    return target


def _target(state: JobState, event: LifecycleEvent, *, jitter: float) -> JobState | None:
    match event.type:
        case EventType.STARTED:
            return dataclasses.replace(state, status=JobStatus.RUNNING, started_at=event.at)
        case EventType.SUCCEEDED:
            return dataclasses.replace(
                state,
                status=JobStatus.SUCCEEDED,
                started_at=state.started_at or _start_of(event),
                finished_at=event.at,
                next_attempt_at=None,
                error_type=None,
                error_message=None,
                traceback=None,
            )
        case EventType.FAILED:
            return _failed(state, event, jitter=jitter)
        case EventType.RECEIVED | EventType.SKIPPED:
            return None
    return None  # an event type this version doesn't know: change nothing


def _failed(state: JobState, event: LifecycleEvent, *, jitter: float) -> JobState:
    error_type = event.error_type or "Error"
    error_message = event.error_message or ""
    due = state.policy.next_attempt_at(
        attempt_in_cycle=state.attempts - state.prior_attempts,
        failed_at=event.at,
        error_type=event.error_type,
        retryable=event.retryable,
        rand=jitter,
    )
    if due is not None:
        return dataclasses.replace(
            state,
            status=JobStatus.RETRYING,
            next_attempt_at=due,
            error_type=error_type,
            error_message=error_message,
            traceback=event.traceback,
        )
    return dataclasses.replace(
        state,
        status=JobStatus.FAILED,
        started_at=state.started_at or _start_of(event),
        finished_at=event.at,
        next_attempt_at=None,
        error_type=error_type,
        error_message=error_message,
        traceback=event.traceback,
    )


def _start_of(event: LifecycleEvent) -> datetime:
    """When a finished attempt started, for a job whose `started` event never arrived."""
    if event.duration_ms is None:
        return event.at
    return event.at - timedelta(milliseconds=max(event.duration_ms, 0.0))
