"""The reconciler against real Redis and both databases: lost messages re-published (and a mere
backlog left alone), lost attempts judged by their lease and the result backend (records written
by a real Celery result backend), safe with several replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from billiard.exceptions import TimeLimitExceeded
from celery import Celery
from sqlalchemy import select

from conveyor_common.celery_app import create_celery_app
from conveyor_common.events import EventType
from conveyor_common.messages import kombu_priority, queue_key
from conveyor_common.results import StoredResult, TaskFailure
from conveyor_common.statuses import JobStatus
from job_service.models import OutboxEntry
from job_service.reconciler import Reconciler

TTL = 2.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def celery_app(redis_backend: Any, redis_namespace: str) -> Iterator[Celery]:
    app = create_celery_app(
        "reconciler-test", broker_url=redis_backend.url, namespace=redis_namespace
    )
    yield app
    app.close()


def _reconciler(
    h: Any, *, later: timedelta = timedelta(0), monotonic: Any = None, batch_size: int = 500
) -> Reconciler:
    state = h.app.state
    return Reconciler(
        state.sessionmaker,
        state.redis,
        h.keys,
        applier=state.applier,
        queued_republish_seconds=300,
        lease_ttl_seconds=TTL,
        batch_size=batch_size,
        clock=lambda: datetime.now(UTC) + later,
        monotonic=monotonic or FakeMonotonic(),
    )


async def _queued(h: Any, n: int) -> list[str]:
    body = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(n)]}
    jobs = (await h.client.post("/internal/v1/jobs/batch", json=body)).json()["jobs"]
    assert await h.app.state.relay.publish_once() == n
    return [job["id"] for job in jobs]


async def _running(h: Any, started_ago: float = 60) -> str:
    [job_id] = await _queued(h, 1)
    await h.clear_queue()
    started = datetime.now(UTC) - timedelta(seconds=started_ago)
    await h.report(h.event(job_id, EventType.STARTED, at=started))
    return job_id


async def _judged_after_ttl(h: Any, reconciler: Reconciler, clock: FakeMonotonic) -> int:
    """Two rounds a lease TTL apart: a lease missing once is not yet a lost attempt."""
    assert await reconciler.judge_expired_leases() == 0
    clock.now += TTL
    return await reconciler.judge_expired_leases()


def _metric(text: str, action: str) -> float:
    prefix = f'conveyor_reconciler_actions_total{{action="{action}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix) :])


async def test_lost_messages_are_republished_as_the_same_attempt(quiet_harness: Any) -> None:
    h = quiet_harness
    jobs = await _queued(h, 3)
    await h.clear_queue()  # Redis lost them
    before = _metric((await h.client.get("/metrics")).text, "republished")

    assert await _reconciler(h).republish_lost() == 0  # not stale yet
    reconciler = _reconciler(h, later=timedelta(seconds=301))
    assert await reconciler.republish_lost() == 3
    assert await h.count(OutboxEntry) == 3
    assert await reconciler.republish_lost() == 0  # re-published just now: not stale again

    assert await h.app.state.relay.publish_once() == 3
    messages = await h.queue_messages()
    assert [m["headers"]["id"] for m in messages] == jobs
    assert {m["decoded_body"][1]["job"]["attempt"] for m in messages} == {1}
    for job_id in jobs:
        job = await h.job(job_id)
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
        assert [(e.attempt, e.type) for e in await h.events_of(job_id)] == [(1, "republished")]
    after = _metric((await h.client.get("/metrics")).text, "republished")
    assert after - before == 3


async def test_a_backlog_is_not_republished_only_what_redis_lost(quiet_harness: Any) -> None:
    h = quiet_harness
    jobs = await _queued(h, 4)
    reconciler = _reconciler(h, later=timedelta(seconds=301))
    assert await reconciler.republish_lost() == 0  # every message is still listed

    # The oldest message is lost (a worker died holding it), the others still wait.
    await h.redis.rpop(h.keys.queue(queue_key("default", kombu_priority(0))))
    assert await reconciler.republish_lost() == 1
    [entry_job] = [e.job_id for e in await _outbox(h)]
    assert str(entry_job) == jobs[0]


async def test_a_received_job_is_not_republished(quiet_harness: Any) -> None:
    h = quiet_harness
    [job_id] = await _queued(h, 1)
    await h.clear_queue()
    await h.report(h.event(job_id, EventType.RECEIVED))
    assert await _reconciler(h, later=timedelta(seconds=301)).republish_lost() == 0


async def test_republishing_is_safe_with_several_replicas(quiet_harness: Any) -> None:
    h = quiet_harness
    await _queued(h, 5)
    await h.clear_queue()
    replicas = [_reconciler(h, later=timedelta(seconds=301)) for _ in range(3)]
    counts = await asyncio.gather(*(r.republish_lost() for r in replicas))
    assert sum(counts) == 5
    assert await h.count(OutboxEntry) == 5


async def test_a_lost_attempt_without_a_result_is_a_worker_lost_failure(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _running(h)
    clock = FakeMonotonic()
    reconciler = _reconciler(h, monotonic=clock)

    assert await _judged_after_ttl(h, reconciler, clock) == 1

    job = await h.job(job_id)
    assert (job.status, job.error_type) == (JobStatus.RETRYING, "WorkerLost")
    assert job.next_attempt_at is not None
    [_, failed] = await h.events_of(job_id)
    assert (failed.attempt, failed.type, failed.error_type) == (1, "failed", "WorkerLost")
    assert await reconciler.judge_expired_leases() == 0  # judged once
    assert _metric((await h.client.get("/metrics")).text, "worker_lost") >= 1


async def test_every_started_attempt_is_checked_page_by_page(quiet_harness: Any) -> None:
    h = quiet_harness
    jobs = [await _running(h) for _ in range(5)]
    await h.redis.set(h.keys.lease(jobs[2]), "1:w-1", ex=60)
    clock = FakeMonotonic()

    assert await _judged_after_ttl(h, _reconciler(h, monotonic=clock, batch_size=2), clock) == 4

    statuses = [(await h.job(job_id)).status for job_id in jobs]
    assert statuses.count(JobStatus.RETRYING) == 4
    assert statuses[2] == JobStatus.RUNNING


async def test_a_live_lease_keeps_the_attempt_running(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id = await _running(h, started_ago=3_600)
    clock = FakeMonotonic()
    reconciler = _reconciler(h, monotonic=clock)
    await h.redis.set(h.keys.lease(job_id), "1:w-1", ex=60)

    assert await _judged_after_ttl(h, reconciler, clock) == 0
    clock.now += 10 * TTL
    assert await reconciler.judge_expired_leases() == 0
    assert (await h.job(job_id)).status == JobStatus.RUNNING

    # A lease that comes back within the TTL (a worker's heartbeat after a Redis restart) resets
    # the count.
    await h.redis.delete(h.keys.lease(job_id))
    assert await reconciler.judge_expired_leases() == 0
    clock.now += TTL / 2
    await h.redis.set(h.keys.lease(job_id), "1:w-1", ex=60)
    assert await reconciler.judge_expired_leases() == 0
    await h.redis.delete(h.keys.lease(job_id))
    clock.now += TTL / 2
    assert await reconciler.judge_expired_leases() == 0
    # A lease of an older attempt is not this attempt's.
    await h.redis.set(h.keys.lease(job_id), "0:w-9", ex=60)
    clock.now += TTL
    assert await reconciler.judge_expired_leases() == 1


async def test_a_stored_success_of_this_attempt_completes_the_job(
    quiet_harness: Any, celery_app: Celery
) -> None:
    h = quiet_harness
    job_id = await _running(h)
    value = StoredResult(tenant_id="acme", attempt=1, value={"ok": True}).model_dump(mode="json")
    await asyncio.to_thread(celery_app.backend.store_result, job_id, value, "SUCCESS")
    clock = FakeMonotonic()

    assert await _judged_after_ttl(h, _reconciler(h, monotonic=clock), clock) == 1

    job = await h.job(job_id)
    assert (job.status, job.error_type) == (JobStatus.SUCCEEDED, None)
    assert job.finished_at is not None


async def test_a_stored_success_of_another_attempt_is_not_this_attempts(
    quiet_harness: Any, celery_app: Celery
) -> None:
    h = quiet_harness
    job_id = await _running(h)
    value = StoredResult(tenant_id="acme", attempt=7, value=1).model_dump(mode="json")
    await asyncio.to_thread(celery_app.backend.store_result, job_id, value, "SUCCESS")
    clock = FakeMonotonic()

    assert await _judged_after_ttl(h, _reconciler(h, monotonic=clock), clock) == 1
    assert (await h.job(job_id)).error_type == "WorkerLost"


@pytest.mark.parametrize(
    ("exception", "status", "error_type"),
    [
        (TaskFailure("acme", "IOError", "reset by peer"), JobStatus.RETRYING, "IOError"),
        (TaskFailure("acme", "PermanentError", "refused"), JobStatus.FAILED, "PermanentError"),
        (TimeLimitExceeded(330), JobStatus.RETRYING, "TimeLimitExceeded"),
    ],
)
async def test_a_stored_failure_fails_the_attempt_with_its_error(
    quiet_harness: Any,
    celery_app: Celery,
    exception: Exception,
    status: JobStatus,
    error_type: str,
) -> None:
    h = quiet_harness
    job_id = await _running(h)
    await asyncio.to_thread(celery_app.backend.mark_as_failure, job_id, exception)
    clock = FakeMonotonic()

    assert await _judged_after_ttl(h, _reconciler(h, monotonic=clock), clock) == 1

    job = await h.job(job_id)
    assert (job.status, job.error_type) == (status, error_type)
    if isinstance(exception, TaskFailure):
        assert job.error_message == exception.message


async def test_the_running_reconciler_gives_a_lost_attempt_its_next_attempt(
    harness_factory: Any, wait_until: Any
) -> None:
    async with harness_factory(reconcile_interval_seconds=0.1, lease_ttl_seconds=0.5) as h:
        await h.seed_catalog()
        job_id = (await h.submit({"task": "flaky", "retry_backoff_seconds": 0})).json()["id"]

        async def queued() -> bool:
            return (await h.job(job_id)).status == JobStatus.QUEUED

        await wait_until(queued)
        await h.add_events(h.event(job_id, EventType.STARTED))  # and then the worker died

        async def next_attempt_queued() -> bool:
            job = await h.job(job_id)
            return job.status == JobStatus.QUEUED and job.attempts == 2

        await wait_until(next_attempt_queued)
        history = [(e.attempt, e.type, e.error_type) for e in await h.events_of(job_id)]
        assert history == [(1, "started", None), (1, "failed", "WorkerLost")]


async def _outbox(h: Any) -> list[OutboxEntry]:
    async with h.session() as session:
        return list((await session.execute(select(OutboxEntry))).scalars())
