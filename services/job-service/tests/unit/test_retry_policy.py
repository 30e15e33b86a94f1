"""The retry policy: defaults and overrides, exponential backoff with full jitter and a cap,
permanent errors (pure: no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor_common.catalog import TaskDefaults
from conveyor_common.jobs import JobCreate
from job_service.jobs.retry_policy import RetryPolicy, is_permanent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_the_task_defaults_apply_unless_the_job_overrides_them() -> None:
    defaults = TaskDefaults(
        max_attempts=4, retry_backoff_seconds=1.5, retry_backoff_max_seconds=90, retry_jitter=False
    )
    assert RetryPolicy.for_submission(defaults, JobCreate(task="t")) == RetryPolicy(
        max_attempts=4, backoff_seconds=1.5, backoff_max_seconds=90, jitter=False
    )
    job = JobCreate(task="t", max_attempts=7, retry_backoff_seconds=0, retry_backoff_max_seconds=5)
    assert RetryPolicy.for_submission(defaults, job) == RetryPolicy(
        max_attempts=7, backoff_seconds=0, backoff_max_seconds=5, jitter=False
    )


def test_the_catalog_defaults_are_two_seconds_doubling_to_five_minutes_with_jitter() -> None:
    policy = RetryPolicy.for_submission(TaskDefaults(), JobCreate(task="t"))
    assert (policy.backoff_seconds, policy.backoff_max_seconds, policy.jitter) == (2, 300, True)


def test_the_bound_doubles_per_attempt_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=100, backoff_seconds=1.0, backoff_max_seconds=30.0)
    assert [policy.bound(n) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 16, 30]
    assert policy.bound(10_000) == 30  # no overflow far past the cap


def test_full_jitter_spreads_the_delay_between_zero_and_the_bound() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_seconds=2.0, backoff_max_seconds=60.0)
    assert policy.delay(3, 0.0) == timedelta(0)
    assert policy.delay(3, 0.25) == timedelta(seconds=2)
    assert policy.delay(3, 0.999) == timedelta(seconds=8 * 0.999)
    assert policy.delay(3, 7.0) == timedelta(seconds=8)  # clamped


def test_without_jitter_the_delay_is_the_bound() -> None:
    policy = RetryPolicy(
        max_attempts=10, backoff_seconds=2.0, backoff_max_seconds=60.0, jitter=False
    )
    assert policy.delay(3, 0.0) == policy.delay(3, 0.9) == timedelta(seconds=8)


def test_next_attempt_is_due_after_the_delay_while_attempts_remain() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_seconds=2.0, jitter=False)
    due = policy.next_attempt_at(
        attempt_in_cycle=2, failed_at=T0, error_type="IOError", retryable=True, rand=0.5
    )
    assert due == T0 + timedelta(seconds=4)
    spent = policy.next_attempt_at(
        attempt_in_cycle=3, failed_at=T0, error_type="IOError", retryable=True, rand=0.5
    )
    assert spent is None


@pytest.mark.parametrize(
    ("error_type", "retryable", "permanent"),
    [
        ("ValueError", None, False),
        ("ValueError", True, False),
        ("ValueError", False, True),
        ("PermanentError", None, True),
        ("InvalidArguments", None, True),
        ("UnknownTask", None, True),
        ("Cancelled", None, True),
        ("WorkerLost", None, False),
        ("TimeLimitExceeded", None, False),
        # What the reporter said wins over the type.
        ("PermanentError", True, False),
        (None, None, False),
    ],
)
def test_permanent_errors(error_type: str | None, retryable: bool | None, permanent: bool) -> None:
    assert is_permanent(error_type, retryable) is permanent
    policy = RetryPolicy(max_attempts=5)
    due = policy.next_attempt_at(
        attempt_in_cycle=1, failed_at=T0, error_type=error_type, retryable=retryable, rand=0.5
    )
    assert (due is None) is permanent
