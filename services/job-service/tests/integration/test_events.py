"""The lifecycle-stream reader against real Redis streams and both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.statuses import JobStatus
from job_service.models import Job

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ev(
    job_id: str, kind: EventType, attempt: int = 1, seconds: float = 0, **extra: Any
) -> LifecycleEvent:
    return LifecycleEvent(
        job_id=uuid.UUID(job_id),
        tenant_id=extra.pop("tenant_id", "acme"),
        attempt=attempt,
        type=kind,
        at=T0 + timedelta(seconds=seconds),
        task="echo",
        worker="w-1",
        **extra,
    )


async def _queued_jobs(h: Any, n: int) -> list[str]:
    body = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(n)]}
    jobs = (await h.client.post("/internal/v1/jobs/batch", json=body)).json()["jobs"]
    assert await h.app.state.relay.publish_once() == n
    return [j["id"] for j in jobs]


async def _drain(h: Any) -> None:
    reader = h.app.state.reader
    await reader.ensure_group()
    while await reader.read_once(block_ms=1):
        pass


async def _stream_is_empty(h: Any) -> bool:
    stream = h.keys.events_stream
    pending = await h.redis.xpending(stream, h.keys.events_group)
    return await h.redis.xlen(stream) == 0 and pending["pending"] == 0


async def test_the_running_reader_applies_a_whole_lifecycle(harness: Any, wait_until: Any) -> None:
    h = harness
    job_id = (await h.submit({"task": "echo", "args": {"x": 1}})).json()["id"]

    async def queued() -> bool:
        return (await h.job(job_id)).status == JobStatus.QUEUED

    await wait_until(queued)
    await h.add_events(
        ev(job_id, EventType.RECEIVED, seconds=1),
        ev(job_id, EventType.STARTED, seconds=2),
        ev(job_id, EventType.SUCCEEDED, seconds=5, duration_ms=3_000),
    )

    async def succeeded() -> bool:
        return (await h.job(job_id)).status == JobStatus.SUCCEEDED

    await wait_until(succeeded)
    job = await h.job(job_id)
    assert (job.attempts, job.started_at, job.finished_at) == (
        1,
        T0 + timedelta(seconds=2),
        T0 + timedelta(seconds=5),
    )
    history = await h.events_of(job_id)
    assert [(e.attempt, e.type) for e in history] == [
        (1, "received"),
        (1, "started"),
        (1, "succeeded"),
    ]
    assert history[2].duration_ms == 3_000
    await wait_until(lambda: _stream_is_empty(h))
    read = (await h.client.get(f"/internal/v1/jobs/{job_id}")).json()
    assert read["status"] == "SUCCEEDED"
    metrics = (await h.client.get("/metrics")).text
    assert 'conveyor_jobs_finished_total{queue="default",status="SUCCEEDED",task="echo"}' in metrics


async def test_duplicates_and_out_of_order_events(quiet_harness: Any) -> None:
    h = quiet_harness
    a, b = await _queued_jobs(h, 2)
    await h.add_events(
        # a: succeeded arrives before started, then duplicates of both
        ev(a, EventType.SUCCEEDED, seconds=5, duration_ms=2_000),
        ev(a, EventType.STARTED, seconds=3),
        ev(a, EventType.SUCCEEDED, seconds=5, duration_ms=2_000),
        ev(a, EventType.STARTED, seconds=3),
        # b: started twice, then a non-retryable failure, then a late duplicate start
        ev(b, EventType.STARTED, seconds=1),
        ev(b, EventType.STARTED, seconds=1),
        ev(
            b,
            EventType.FAILED,
            seconds=2,
            error_type="ValueError",
            error_message="bad",
            retryable=False,
        ),
        ev(b, EventType.STARTED, seconds=1),
    )
    await _drain(h)

    job_a, job_b = await h.job(a), await h.job(b)
    assert job_a.status == JobStatus.SUCCEEDED
    assert job_a.finished_at == T0 + timedelta(seconds=5)
    assert job_a.started_at == T0 + timedelta(seconds=3)  # from duration_ms: 5 s - 2 s
    assert sorted(e.type for e in await h.events_of(a)) == ["started", "succeeded"]
    assert job_b.status == JobStatus.FAILED
    assert (job_b.error_type, job_b.error_message) == ("ValueError", "bad")
    assert job_b.finished_at == T0 + timedelta(seconds=2)
    assert [e.type for e in await h.events_of(b)] == ["started", "failed"]
    assert await _stream_is_empty(h)

    # Re-applying everything (as after a crash between commit and ack) changes nothing.
    before = [(await h.job(x)).updated_at for x in (a, b)]
    await h.add_events(ev(a, EventType.SUCCEEDED, seconds=9), ev(b, EventType.SUCCEEDED, seconds=9))
    await _drain(h)
    assert [(await h.job(x)).updated_at for x in (a, b)] == before
    assert len(await h.events_of(a)) == 2


async def test_retry_then_stale_attempt_events_change_nothing(quiet_harness: Any) -> None:
    h = quiet_harness
    [job_id] = await _queued_jobs(h, 1)
    now = datetime.now(UTC)
    failed = ev(job_id, EventType.FAILED, error_type="Timeout", error_message="slow")
    await h.add_events(ev(job_id, EventType.STARTED), failed.model_copy(update={"at": now}))
    await _drain(h)

    job = await h.job(job_id)
    assert job.status == JobStatus.RETRYING
    assert job.next_attempt_at is not None
    assert job.next_attempt_at > now
    assert (job.error_type, job.error_message) == ("Timeout", "slow")

    await asyncio.sleep(max((job.next_attempt_at - datetime.now(UTC)).total_seconds(), 0) + 0.01)
    assert await h.app.state.promoter.promote_once() == 1
    assert (await h.job(job_id)).status == JobStatus.PENDING
    assert await h.outbox_size() == 1
    # A late duplicate of attempt 1's failure while the job waits between attempts: stale.
    await h.add_events(failed)
    await _drain(h)
    assert (await h.job(job_id)).status == JobStatus.PENDING

    assert await h.app.state.relay.publish_once() == 1
    job = await h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 2)
    [first, second] = await h.queue_messages("default")
    assert [
        first["decoded_body"][1]["job"]["attempt"],
        second["decoded_body"][1]["job"]["attempt"],
    ] == [1, 2]

    # Stale events of attempt 1 (a redelivered first message) are ignored...
    await h.add_events(ev(job_id, EventType.STARTED, 1, 50), ev(job_id, EventType.SUCCEEDED, 1, 51))
    await _drain(h)
    assert (await h.job(job_id)).status == JobStatus.QUEUED
    # ...and attempt 2 runs to its end.
    await h.add_events(ev(job_id, EventType.STARTED, 2, 60), ev(job_id, EventType.SUCCEEDED, 2, 61))
    await _drain(h)
    job = await h.job(job_id)
    assert (job.status, job.attempts, job.error_type) == (JobStatus.SUCCEEDED, 2, None)
    assert [(e.attempt, e.type) for e in await h.events_of(job_id)] == [
        (1, "started"),
        (1, "failed"),
        (1, "succeeded"),
        (2, "started"),
        (2, "succeeded"),
    ]


async def test_cancelled_unknown_and_malformed_events_change_nothing(quiet_harness: Any) -> None:
    h = quiet_harness
    job_id, other = await _queued_jobs(h, 2)
    async with h.session() as session:
        await session.execute(
            update(Job).where(Job.id == uuid.UUID(job_id)).values(status=JobStatus.CANCELLED)
        )
        await session.commit()
    unknown = str(uuid.uuid4())
    await h.add_events(
        ev(job_id, EventType.STARTED),
        ev(job_id, EventType.SUCCEEDED, seconds=1),
        ev(unknown, EventType.STARTED),
        ev(other, EventType.STARTED, tenant_id="globex", attempt=2),  # not this job's tenant
        ev(other, EventType.SUCCEEDED, attempt=2**40),  # can't be stored: dropped, not stuck
    )
    await h.redis.xadd(h.keys.events_stream, {"e": "not json"})
    await h.redis.xadd(h.keys.events_stream, {"other": "field"})
    await h.add_events(ev(other, EventType.STARTED, seconds=2))

    await _drain(h)

    job = await h.job(job_id)
    assert (job.status, job.attempts, job.started_at) == (JobStatus.CANCELLED, 1, None)
    assert (await h.job(other)).status == JobStatus.RUNNING
    assert [(e.attempt, e.type) for e in await h.events_of(other)] == [(1, "started")]
    assert await _stream_is_empty(h)  # unparseable and unknown entries are acked, not stuck


async def test_pending_entries_of_a_dead_consumer_are_reclaimed(
    harness_factory: Any, wait_until: Any
) -> None:
    async with harness_factory(background_tasks=False, events_claim_idle_ms=50) as h:
        await h.seed_catalog()
        a, b = await _queued_jobs(h, 2)
        reader = h.app.state.reader
        await reader.ensure_group()
        await h.add_events(ev(a, EventType.STARTED), ev(b, EventType.STARTED))
        # A reader that read the entries and died before applying them.
        stream, group = h.keys.events_stream, h.keys.events_group
        taken = await h.redis.xreadgroup(group, "dead-reader", {stream: ">"}, count=10)
        assert len(taken[0][1]) == 2
        assert await reader.read_once(block_ms=1) == 0  # nothing new for a live reader

        await asyncio.sleep(0.1)
        assert await reader.reclaim_once() == 2

        assert (await h.job(a)).status == (await h.job(b)).status == JobStatus.RUNNING
        assert await _stream_is_empty(h)


async def test_statements_per_event_batch_do_not_grow_with_its_size(quiet_harness: Any) -> None:
    h = quiet_harness
    counts = {}
    for n in (10, 500):
        ids = await _queued_jobs(h, n)
        await h.add_events(*(ev(i, EventType.STARTED) for i in ids))
        await h.app.state.reader.ensure_group()
        with h.count_statements() as counter:
            assert await h.app.state.reader.read_once(block_ms=1) == n
        counts[n] = counter.count
        assert await h.count(Job, Job.status == JobStatus.RUNNING) == len(ids) + (
            10 if n == 500 else 0
        )

    assert counts[500] == counts[10]
    if h.settings.database_url.get_secret_value().startswith("sqlite"):
        assert counts[10] <= 4, counts  # BEGIN IMMEDIATE, lock, update, insert history
    else:
        # Optimistic, with no transaction around it: one guarded write (the relay that
        # published these jobs cached their state, so nothing is read first).
        assert counts[10] == 1, counts
