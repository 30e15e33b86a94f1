"""The promoter moves due SCHEDULED and RETRYING jobs to PENDING with an outbox row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from conveyor_common.statuses import JobStatus
from job_service.models import Job, OutboxEntry
from job_service.scheduler import Promoter


async def test_due_scheduled_and_retrying_jobs_become_pending(quiet_harness: Any) -> None:
    h = quiet_harness
    now = datetime.now(UTC)
    soon, later = now + timedelta(hours=1), now + timedelta(hours=2)
    scheduled = (await h.submit({"task": "noop", "run_at": soon.isoformat()})).json()["id"]
    not_due = (await h.submit({"task": "noop", "run_at": later.isoformat()})).json()["id"]
    retrying = (await h.submit({"task": "noop"})).json()["id"]
    await h.app.state.relay.publish_once()
    async with h.session() as session:
        await session.execute(
            update(Job)
            .where(Job.id == uuid.UUID(retrying))
            .values(status=JobStatus.RETRYING, next_attempt_at=now + timedelta(minutes=1))
        )
        await session.commit()
    clock = [now]
    promoter = Promoter(h.app.state.sessionmaker, clock=lambda: clock[0])

    assert await promoter.promote_once() == 0  # nothing is due yet
    clock[0] = now + timedelta(minutes=1)
    assert await promoter.promote_once() == 1  # the retry is due, the schedules are not
    assert (await h.job(retrying)).status == JobStatus.PENDING
    assert (await h.job(scheduled)).status == JobStatus.SCHEDULED

    clock[0] = soon
    assert await promoter.promote_once() == 1
    assert (await h.job(scheduled)).status == JobStatus.PENDING
    assert (await h.job(not_due)).status == JobStatus.SCHEDULED
    assert await h.count(OutboxEntry) == 2
    assert await h.count(OutboxEntry, OutboxEntry.job_id == uuid.UUID(not_due)) == 0
    assert await promoter.promote_once() == 0

    assert await h.app.state.relay.publish_once() == 2
    assert (await h.job(scheduled)).attempts == 1
    assert (await h.job(retrying)).attempts == 2


async def test_the_running_promoter_publishes_a_scheduled_job(
    harness: Any, wait_until: Any
) -> None:
    h = harness
    run_at = datetime.now(UTC) + timedelta(milliseconds=200)
    job_id = (await h.submit({"task": "noop", "run_at": run_at.isoformat()})).json()["id"]

    async def queued() -> bool:
        return (await h.job(job_id)).status == JobStatus.QUEUED

    await wait_until(queued)
    [message] = await h.queue_messages("default")
    assert message["headers"]["id"] == job_id
