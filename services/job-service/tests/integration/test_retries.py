"""Retries decided in one place: the policy fixed at submit, backoff waiting in PostgreSQL (never
in Redis), attempt numbers advancing, permanent errors and lost workers (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor_common.events import EventType
from conveyor_common.statuses import JobStatus
from job_service.scheduler import Promoter


async def _published(h: Any, body: dict[str, Any]) -> str:
    job_id: str = (await h.submit(body)).json()["id"]
    assert await h.app.state.relay.publish_once() == 1
    return job_id


async def test_the_policy_is_stored_at_submit_from_task_defaults_and_job_overrides(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    defaults = (await h.submit({"task": "flaky"})).json()
    overridden = (
        await h.submit(
            {
                "task": "flaky",
                "max_attempts": 6,
                "retry_backoff_seconds": 0.5,
                "retry_backoff_max_seconds": 4,
            }
        )
    ).json()

    assert (defaults["max_attempts"], defaults["retry_backoff_seconds"]) == (3, 10)
    assert defaults["retry_backoff_max_seconds"] == 15
    assert (overridden["max_attempts"], overridden["retry_backoff_seconds"]) == (6, 0.5)
    row = await h.job(overridden["id"])
    assert (row.max_attempts, row.retry_backoff_seconds, row.retry_backoff_max_seconds) == (
        6,
        0.5,
        4,
    )
    assert (row.retry_jitter, row.cycle, row.prior_attempts) == (False, 1, 0)


async def test_a_failed_attempt_waits_in_postgres_then_runs_as_the_next_attempt(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    job_id = await _published(h, {"task": "flaky"})
    [first] = await h.queue_messages()
    await h.clear_queue()  # a worker took it
    failed = h.event(job_id, EventType.FAILED, error_type="IOError", error_message="reset")
    await h.report(h.event(job_id, EventType.STARTED), failed)

    job = await h.job(job_id)
    # flaky: base 10 s, no jitter: due 10 s after the failure.
    assert (job.status, job.attempts) == (JobStatus.RETRYING, 1)
    assert job.next_attempt_at == failed.at + timedelta(seconds=10)
    read = (await h.client.get(f"/internal/v1/jobs/{job_id}")).json()
    assert read["next_attempt_at"] is not None
    assert read["error"] == {"type": "IOError", "message": "reset"}
    # The delay is a row in PostgreSQL, not a message with an ETA in Redis.
    assert await h.queue_length() == 0
    assert await h.outbox_size() == 0

    promoter = Promoter(h.app.state.sessionmaker, clock=lambda: failed.at + timedelta(seconds=9))
    assert await promoter.promote_once() == 0
    promoter = Promoter(h.app.state.sessionmaker, clock=lambda: failed.at + timedelta(seconds=10))
    assert await promoter.promote_once() == 1
    assert await h.app.state.relay.publish_once() == 1

    [second] = await h.queue_messages()
    assert first["decoded_body"][1]["job"]["attempt"] == 1
    assert second["decoded_body"][1]["job"]["attempt"] == 2
    assert second["headers"]["eta"] is None
    job = await h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 2)


async def test_the_backoff_doubles_up_to_the_cap_and_attempts_end_in_failed(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    job_id = await _published(h, {"task": "flaky"})
    delays = []
    for attempt in (1, 2, 3):
        failed = h.event(job_id, EventType.FAILED, attempt, error_type="IOError")
        await h.report(h.event(job_id, EventType.STARTED, attempt), failed)
        job = await h.job(job_id)
        if attempt < 3:
            assert job.status == JobStatus.RETRYING
            assert job.next_attempt_at is not None
            delays.append((job.next_attempt_at - failed.at).total_seconds())
            due = job.next_attempt_at
            promoter = Promoter(h.app.state.sessionmaker, clock=lambda due=due: due)
            assert await promoter.promote_once() == 1
            assert await h.app.state.relay.publish_once() == 1
    assert delays == [10, 15]  # 10 x 2^0, then 10 x 2^1 capped at 15
    job = await h.job(job_id)
    assert (job.status, job.attempts, job.next_attempt_at) == (JobStatus.FAILED, 3, None)
    read = (await h.client.get(f"/internal/v1/jobs/{job_id}")).json()
    assert read["dead_letter"] is True


async def test_a_permanent_error_is_never_retried(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h, {"task": "flaky", "max_attempts": 5})
    await h.report(
        h.event(job_id, EventType.STARTED),
        h.event(job_id, EventType.FAILED, error_type="PaymentRefused", retryable=False),
    )
    job = await h.job(job_id)
    assert (job.status, job.attempts, job.error_type) == (JobStatus.FAILED, 1, "PaymentRefused")


async def test_worker_lost_and_time_limit_failures_are_retried(quiet_harness: Any) -> None:
    h = quiet_harness
    lost = await _published(h, {"task": "flaky"})
    slow = await _published(h, {"task": "flaky"})
    await h.report(
        h.event(lost, EventType.STARTED),
        h.event(lost, EventType.FAILED, error_type="WorkerLost", retryable=True),
        h.event(slow, EventType.STARTED),
        h.event(slow, EventType.FAILED, error_type="TimeLimitExceeded", retryable=True),
    )
    for job_id in (lost, slow):
        assert (await h.job(job_id)).status == JobStatus.RETRYING


async def test_skipped_events_change_nothing(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h, {"task": "flaky"})
    await h.report(
        h.event(job_id, EventType.SKIPPED, 1, error_message="already-started"),
        h.event(job_id, EventType.SKIPPED, 2, error_message="already-started"),
    )
    job = await h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    history = await h.events_of(job_id)
    assert [(e.attempt, e.type) for e in history] == [(1, "skipped"), (2, "skipped")]


async def test_events_for_another_attempt_change_nothing(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _published(h, {"task": "flaky"})
    await h.report(h.event(job_id, EventType.STARTED), h.event(job_id, EventType.FAILED))
    later = datetime.now(UTC) + timedelta(hours=1)
    promoter = Promoter(h.app.state.sessionmaker, clock=lambda: later)
    assert await promoter.promote_once() == 1
    assert await h.app.state.relay.publish_once() == 1
    await h.report(h.event(job_id, EventType.STARTED, 2))
    # A late success of attempt 1 arrives while attempt 2 runs: fenced.
    await h.report(h.event(job_id, EventType.SUCCEEDED, 1))
    job = await h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 2)
