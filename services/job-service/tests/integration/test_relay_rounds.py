"""A relay round's writes (claim, mark QUEUED, delete the outbox rows) are one transaction that
commits only once the messages are out, and concurrent rounds never take the same job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor_common.statuses import JobStatus
from job_service.jobs.repository import JobRepository


async def _submit(h: Any, count: int) -> list[str]:
    ids = []
    for i in range(count):
        response = await h.submit({"task": "echo", "args": {"x": i}})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def test_a_round_that_fails_to_publish_gives_its_jobs_back(
    quiet_harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = quiet_harness
    ids = await _submit(h, 3)
    relay = h.app.state.relay

    async def redis_refuses(*_args: Any) -> None:
        raise ConnectionError("injected: Redis refused the pipeline")

    monkeypatch.setattr(relay, "_publish", redis_refuses)
    with pytest.raises(ConnectionError):
        await relay.publish_once()
    assert await h.outbox_size() == 3
    for job_id in ids:
        job = await h.job(job_id)
        assert (job.status, job.attempts, job.queued_at) == (JobStatus.PENDING, 0, None)

    monkeypatch.undo()
    assert await relay.publish_once() == 3
    assert await h.outbox_size() == 0
    messages = await h.queue_messages("default")
    assert sorted(m["decoded_body"][1]["job"]["job_id"] for m in messages) == sorted(ids)
    assert {m["decoded_body"][1]["job"]["attempt"] for m in messages} == {1}
    for job_id in ids:
        job = await h.job(job_id)
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_rounds_take_disjoint_jobs(quiet_harness: Any) -> None:
    h = quiet_harness
    ids = await _submit(h, 5)
    sessionmaker = h.app.state.sessionmaker
    now = datetime.now(UTC)

    async def take(repository: JobRepository, limit: int) -> list[Any]:
        # A relay round's writes, as `OutboxRelay.publish_once` makes them.
        rows = list(await repository.claim_outbox(limit))
        await repository.mark_queued([row.id for row in rows], now)
        await repository.delete_outbox([row.outbox_id for row in rows])
        return rows

    async with sessionmaker() as first:
        await first.begin()
        held = await take(JobRepository.from_session(first), 2)
        async with sessionmaker() as second, second.begin():
            # Waiting for the first round's locks instead of skipping them would hang here.
            taken = await asyncio.wait_for(take(JobRepository.from_session(second), 100), 10)
        # The first round's publish failed: it rolls back and its rows wait for the next one.
        await first.rollback()

    held_ids = {str(row.id) for row in held}
    taken_ids = {str(row.id) for row in taken}
    assert len(held_ids) == 2
    assert held_ids.isdisjoint(taken_ids)
    assert held_ids | taken_ids == set(ids)
    assert {row.status for row in [*held, *taken]} == {JobStatus.PENDING}  # as claimed
    assert await h.outbox_size() == 2
    for job_id in ids:
        job = await h.job(job_id)
        expected = (JobStatus.PENDING, 0) if job_id in held_ids else (JobStatus.QUEUED, 1)
        assert (job.status, job.attempts) == expected
        if job_id not in held_ids:
            assert job.queued_at == now
