"""How the lifecycle reader batches: it lingers for more events after a short read, and on
PostgreSQL applies a batch optimistically (no locks, and no read for the jobs this replica
published: their state is cached), deciding again for a job that another writer changed since
its state was read or cached."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.statuses import JobStatus
from job_service.jobs.repository import JobRepository


def _event(job_id: str, kind: EventType, attempt: int = 1) -> LifecycleEvent:
    return LifecycleEvent(
        job_id=uuid.UUID(job_id),
        tenant_id="acme",
        attempt=attempt,
        type=kind,
        at=datetime.now(UTC),
        task="echo",
        worker="w-1",
    )


async def _queued(h: Any, n: int) -> list[str]:
    body = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(n)]}
    jobs = (await h.client.post("/internal/v1/jobs/batch", json=body)).json()["jobs"]
    assert await h.app.state.relay.publish_once() == n
    return [job["id"] for job in jobs]


async def test_events_that_arrive_while_the_reader_lingers_join_its_batch(
    harness_factory: Any,
) -> None:
    async with harness_factory(background_tasks=False, events_linger_ms=400) as h:
        await h.seed_catalog()
        a, b = await _queued(h, 2)
        reader = h.app.state.reader
        await reader.ensure_group()
        await h.add_events(_event(a, EventType.STARTED))

        with h.count_statements() as counter:
            read = asyncio.create_task(reader.read_once(block_ms=1))
            await asyncio.sleep(0.1)  # the reader has the first event and lingers
            await h.add_events(_event(a, EventType.SUCCEEDED), _event(b, EventType.STARTED))
            assert await read == 3

        assert (await h.job(a)).status == JobStatus.SUCCEEDED
        assert (await h.job(b)).status == JobStatus.RUNNING
        # One batch: the statements of a single apply, not of three.
        assert counter.count <= 4, counter.statements


# The optimistic apply exists on PostgreSQL only (SQLite applies under BEGIN IMMEDIATE).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_job_changed_between_read_and_write_is_decided_again(
    quiet_harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = quiet_harness
    cancelled, other = await _queued(h, 2)
    # Not from the relay's cache: this test is about a read that goes stale.
    h.app.state.state_cache.forget([uuid.UUID(cancelled), uuid.UUID(other)])
    read_states = JobRepository.read_states
    reads: list[int] = []

    async def read_then_cancel(self: JobRepository, job_ids: Any) -> Any:
        rows = await read_states(self, job_ids)
        if not reads:
            # Another writer commits after the reader read the rows, before it writes.
            response = await h.client.post(f"/internal/v1/jobs/{cancelled}/cancel")
            assert response.status_code == 200, response.text
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(JobRepository, "read_states", read_then_cancel)
    await h.report(_event(cancelled, EventType.STARTED), _event(other, EventType.STARTED))

    # The first round wrote the job nobody else touched and refused the cancelled one's stale
    # decision (RUNNING over CANCELLED); the second round decided it again from CANCELLED.
    assert reads == [2, 1]
    assert (await h.job(cancelled)).status == JobStatus.CANCELLED
    assert (await h.job(other)).status == JobStatus.RUNNING
    assert {e.type for e in await h.events_of(cancelled)} == {"cancelled", "started"}
    assert [e.type for e in await h.events_of(other)] == ["started"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_stale_cached_state_costs_a_round_not_a_wrong_state(
    quiet_harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = quiet_harness
    cancelled, other = await _queued(h, 2)  # the relay cached both as QUEUED
    read_states = JobRepository.read_states
    reads: list[int] = []

    async def counted(self: JobRepository, job_ids: Any) -> Any:
        rows = await read_states(self, job_ids)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(JobRepository, "read_states", counted)
    # A cancel the cache does not know about.
    assert (await h.client.post(f"/internal/v1/jobs/{cancelled}/cancel")).status_code == 200
    await h.report(_event(cancelled, EventType.STARTED), _event(other, EventType.STARTED))

    # First round from the cache (no read): the stale job's write was refused; second round
    # read it and decided from CANCELLED.
    assert reads == [1]
    assert (await h.job(cancelled)).status == JobStatus.CANCELLED
    assert (await h.job(other)).status == JobStatus.RUNNING

    # The running job is cached as RUNNING now: its next event needs no read at all.
    await h.report(_event(other, EventType.SUCCEEDED))
    assert reads == [1]
    assert (await h.job(other)).status == JobStatus.SUCCEEDED
