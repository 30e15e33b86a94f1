"""The state machine's rules, one at a time (pure: no servers)."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.statuses import FINAL_STATUSES, STATUS_RANK, JobStatus
from job_service.jobs.retry_policy import RetryPolicy
from job_service.jobs.state_machine import JobState, apply_event

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
JOB = uuid.uuid4()


def policy(max_attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, backoff_seconds=2.0, backoff_max_seconds=60.0)


def ev(kind: EventType, attempt: int = 1, seconds: float = 0, **extra: object) -> LifecycleEvent:
    return LifecycleEvent(
        job_id=JOB,
        tenant_id="acme",
        attempt=attempt,
        type=kind,
        at=T0 + timedelta(seconds=seconds),
        **extra,  # type: ignore[arg-type]
    )


def queued(attempt: int = 1, max_attempts: int = 3) -> JobState:
    return JobState(status=JobStatus.QUEUED, attempts=attempt, policy=policy(max_attempts))


def apply(state: JobState, event: LifecycleEvent, jitter: float = 0.5) -> JobState | None:
    return apply_event(state, event, jitter=jitter)


def run(state: JobState, *events: LifecycleEvent) -> JobState:
    for event in events:
        state = apply(state, event) or state
    return state


def test_started_moves_to_running_with_started_at() -> None:
    after = apply(queued(), ev(EventType.STARTED, seconds=1))
    assert after == dataclasses.replace(
        queued(), status=JobStatus.RUNNING, started_at=T0 + timedelta(seconds=1)
    )


def test_succeeded_moves_to_succeeded_with_finished_at() -> None:
    running = run(queued(), ev(EventType.STARTED))
    after = apply(running, ev(EventType.SUCCEEDED, seconds=4))
    assert after is not None
    assert (after.status, after.started_at, after.finished_at) == (
        JobStatus.SUCCEEDED,
        T0,
        T0 + timedelta(seconds=4),
    )


def test_received_and_skipped_change_nothing() -> None:
    assert apply(queued(), ev(EventType.RECEIVED)) is None
    assert apply(queued(), ev(EventType.SKIPPED)) is None
    running = run(queued(), ev(EventType.STARTED))
    assert apply(running, ev(EventType.SKIPPED)) is None


def test_a_skip_for_a_newer_attempt_does_not_advance_the_job() -> None:
    assert apply(queued(1), ev(EventType.SKIPPED, attempt=2)) is None
    pending = JobState(status=JobStatus.PENDING, attempts=1, policy=policy())
    assert apply(pending, ev(EventType.SKIPPED, attempt=2)) is None


def test_retryable_failure_with_attempts_left_retries_after_a_capped_jittered_backoff() -> None:
    after = apply(
        queued(1, 3), ev(EventType.FAILED, seconds=10, error_type="IOError", error_message="x")
    )
    assert after is not None
    assert after.status == JobStatus.RETRYING
    assert after.finished_at is None
    assert (after.error_type, after.error_message) == ("IOError", "x")
    # attempt 1, base 2 s, full jitter 0.5: 1 s after the failure
    assert after.next_attempt_at == T0 + timedelta(seconds=11)


def test_retryable_none_counts_as_retryable() -> None:
    after = apply(queued(2, 3), ev(EventType.FAILED, attempt=2, retryable=None))
    assert after is not None
    assert after.status == JobStatus.RETRYING


def test_failure_on_the_last_attempt_fails_with_the_error() -> None:
    after = apply(
        queued(3, 3),
        ev(
            EventType.FAILED,
            attempt=3,
            seconds=5,
            error_type="E",
            error_message="m",
            traceback="tb",
        ),
    )
    assert after is not None
    assert (after.status, after.finished_at, after.next_attempt_at) == (
        JobStatus.FAILED,
        T0 + timedelta(seconds=5),
        None,
    )
    assert (after.error_type, after.error_message, after.traceback) == ("E", "m", "tb")


def test_a_permanent_error_fails_at_once() -> None:
    after = apply(queued(1, 5), ev(EventType.FAILED, retryable=False, error_type="Bad"))
    assert after is not None
    assert after.status == JobStatus.FAILED


def test_a_failure_without_error_details_still_records_one() -> None:
    after = apply(queued(1, 1), ev(EventType.FAILED))
    assert after is not None
    assert (after.error_type, after.error_message) == ("Error", "")


def test_duplicates_change_nothing_the_second_time() -> None:
    for kind in (EventType.STARTED, EventType.SUCCEEDED, EventType.FAILED):
        first = apply(queued(1, 1), ev(kind))
        assert first is not None
        assert apply(first, ev(kind)) is None, kind


def test_out_of_order_succeeded_before_started() -> None:
    done = apply(queued(), ev(EventType.SUCCEEDED, seconds=5, duration_ms=1500))
    assert done is not None
    assert done.status == JobStatus.SUCCEEDED
    assert done.started_at == T0 + timedelta(seconds=3.5)  # derived from the duration
    assert apply(done, ev(EventType.STARTED, seconds=3)) is None


def test_started_after_failure_for_the_same_attempt_changes_nothing() -> None:
    retrying = apply(queued(1, 3), ev(EventType.FAILED))
    assert retrying is not None
    assert apply(retrying, ev(EventType.STARTED)) is None


def test_events_of_an_older_attempt_change_nothing() -> None:
    state = queued(attempt=2)
    for kind in EventType:
        assert apply(state, ev(kind, attempt=1)) is None, kind
    running = run(state, ev(EventType.STARTED, attempt=2))
    for kind in EventType:
        assert apply(running, ev(kind, attempt=1)) is None, kind


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.WAITING])
def test_a_job_between_attempts_ignores_its_finished_attempts_events(status: JobStatus) -> None:
    # RETRYING (attempt 1 over) -> promoted to PENDING: a late duplicate of attempt 1 is stale.
    state = JobState(status=status, attempts=1, policy=policy(3))
    for kind in EventType:
        assert apply(state, ev(kind, attempt=1)) is None, kind


def test_an_event_for_a_newer_attempt_advances_the_job() -> None:
    retrying = JobState(status=JobStatus.RETRYING, attempts=1, policy=policy(3), error_type="E")
    after = apply(retrying, ev(EventType.STARTED, attempt=2, seconds=7))
    assert after is not None
    assert (after.status, after.attempts, after.started_at) == (
        JobStatus.RUNNING,
        2,
        T0 + timedelta(seconds=7),
    )

    pending = JobState(status=JobStatus.PENDING, attempts=0, policy=policy(3))
    received = apply(pending, ev(EventType.RECEIVED, attempt=1))
    assert received is not None
    assert (received.status, received.attempts) == (JobStatus.QUEUED, 1)


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_final_statuses_never_change(status: JobStatus) -> None:
    state = JobState(status=status, attempts=1, policy=policy(3))
    for kind, attempt in itertools.product(EventType, (1, 2, 5)):
        assert apply(state, ev(kind, attempt=attempt)) is None, (kind, attempt)


def test_a_cancelled_job_ignores_everything() -> None:
    cancelled = JobState(status=JobStatus.CANCELLED, attempts=1, policy=policy(3))
    assert (
        run(
            cancelled,
            ev(EventType.STARTED),
            ev(EventType.SUCCEEDED),
            ev(EventType.FAILED, attempt=2),
        )
        == cancelled
    )


def test_any_order_of_one_attempts_events_ends_in_the_same_status() -> None:
    events = [
        ev(EventType.RECEIVED),
        ev(EventType.STARTED, seconds=1),
        ev(EventType.SUCCEEDED, seconds=2),
    ]
    ends = {run(queued(), *order).status for order in itertools.permutations(events)}
    assert ends == {JobStatus.SUCCEEDED}


def test_status_never_moves_backwards_within_an_attempt() -> None:
    kinds = [
        EventType.RECEIVED,
        EventType.STARTED,
        EventType.SUCCEEDED,
        EventType.FAILED,
        EventType.SKIPPED,
    ]
    for order in itertools.permutations(kinds, 4):
        state = queued(1, 2)
        for kind in order:
            after = apply(state, ev(kind))
            if after is not None:
                assert STATUS_RANK[after.status] > STATUS_RANK[state.status]
                state = after


@pytest.mark.parametrize("error_type", ["WorkerLost", "TimeLimitExceeded"])
def test_a_lost_worker_or_an_exceeded_time_limit_is_retried(error_type: str) -> None:
    after = apply(queued(1, 2), ev(EventType.FAILED, error_type=error_type, retryable=True))
    assert after is not None
    assert (after.status, after.error_type) == (JobStatus.RETRYING, error_type)
    spent = apply(queued(2, 2), ev(EventType.FAILED, attempt=2, error_type=error_type))
    assert spent is not None
    assert spent.status == JobStatus.FAILED


def test_a_permanent_error_type_fails_at_once_when_retryable_is_unknown() -> None:
    after = apply(queued(1, 5), ev(EventType.FAILED, error_type="PermanentError"))
    assert after is not None
    assert after.status == JobStatus.FAILED


def test_attempts_are_counted_per_cycle() -> None:
    # Cycle 2 began after attempt 3: attempts 4 and 5 are its first and second of three.
    second_cycle = JobState(status=JobStatus.QUEUED, attempts=5, policy=policy(3), prior_attempts=3)
    after = apply(second_cycle, ev(EventType.FAILED, attempt=5, seconds=10))
    assert after is not None
    assert after.status == JobStatus.RETRYING
    # The second attempt of the cycle: base 2 s x 2 = 4 s bound, half of it with jitter 0.5.
    assert after.next_attempt_at == T0 + timedelta(seconds=12)
    last = dataclasses.replace(second_cycle, attempts=6)
    spent = apply(last, ev(EventType.FAILED, attempt=6))
    assert spent is not None
    assert spent.status == JobStatus.FAILED
