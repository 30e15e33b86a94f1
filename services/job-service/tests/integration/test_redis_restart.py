"""Redis restarted empty while jobs are queued and running: the stream reader makes its group
again, the relay and reconciler keep going, and every job still completes once a (simulated)
worker runs what it is given. The fault test with real workers lives with the other fault tests;
this one pins job-service's part of it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from conveyor_common.events import EventType
from conveyor_common.messages import priority_queue_keys
from conveyor_common.statuses import JobStatus

pytestmark = pytest.mark.fault

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class SimulatedWorker:
    """Takes messages as kombu's worker would (BRPOP over the queue's priority lists) and reports
    the lifecycle a successful attempt has: lease, received, started, succeeded."""

    def __init__(self, h: Any) -> None:
        self.h = h
        self.ran: list[tuple[str, int]] = []
        self.paused = True

    async def take(self) -> tuple[str, int] | None:
        lists = [self.h.keys.queue(key) for key in priority_queue_keys("default")]
        item = await self.h.redis.brpop(lists, timeout=0.2)
        if item is None:
            return None
        message = json.loads(item[1])
        envelope = json.loads(base64.b64decode(message["body"]))[1]["job"]
        return envelope["job_id"], envelope["attempt"]

    async def start(self, job_id: str, attempt: int) -> None:
        await self.h.redis.set(self.h.keys.lease(job_id), f"{attempt}:sim", ex=60)
        await self.h.add_events(
            self.h.event(job_id, EventType.RECEIVED, attempt, task="noop"),
            self.h.event(job_id, EventType.STARTED, attempt, task="noop"),
        )

    async def finish(self, job_id: str, attempt: int) -> None:
        await self.h.add_events(self.h.event(job_id, EventType.SUCCEEDED, attempt, task="noop"))
        await self.h.redis.delete(self.h.keys.lease(job_id))
        self.ran.append((job_id, attempt))

    async def run(self) -> None:
        while True:
            if self.paused:
                await asyncio.sleep(0.05)
                continue
            try:
                taken = await self.take()
                if taken is not None:
                    await self.start(*taken)
                    await self.finish(*taken)
            except REDIS_ERRORS:
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(worker: SimulatedWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _retrying(call: Any) -> Any:
    """The test's own Redis client meets the restart too."""
    for _ in range(50):
        try:
            return await call()
        except REDIS_ERRORS:
            await asyncio.sleep(0.1)
    return await call()


async def test_jobs_complete_after_redis_restarts_empty(
    harness_factory: Any, own_redis_server: Any, wait_until: Any
) -> None:
    server = own_redis_server()
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    try:
        async with harness_factory(
            redis_url=server.url,
            redis_client=client,
            queued_republish_seconds=1.0,
            lease_ttl_seconds=5.0,
            reconcile_interval_seconds=0.2,
        ) as h:
            await h.seed_catalog()
            body = {"jobs": [{"task": "noop", "retry_backoff_seconds": 0} for _ in range(6)]}
            jobs = [
                j["id"]
                for j in (await h.client.post("/internal/v1/jobs/batch", json=body)).json()["jobs"]
            ]

            async def all_queued() -> bool:
                return await h.queue_length() == 6

            await wait_until(all_queued)
            worker = SimulatedWorker(h)
            running_now = [await worker.take() for _ in range(2)]
            for taken in running_now:
                assert taken is not None
                await worker.start(*taken)

            async def two_running() -> bool:
                statuses = [(await h.job(j)).status for j in jobs]
                return statuses.count(JobStatus.RUNNING) == 2

            await wait_until(two_running)

            server.restart()  # same port, no persistence: queues, stream, group, leases, catalog gone
            assert await _retrying(lambda: h.redis.dbsize()) == 0

            # The running attempts' worker survived: its heartbeat puts the leases back, and it
            # reports its results into the new, empty stream.
            for taken in running_now:
                assert taken is not None
                job_id, attempt = taken
                await _retrying(
                    lambda job_id=job_id, attempt=attempt: h.redis.set(
                        h.keys.lease(job_id), f"{attempt}:sim", ex=60
                    )
                )
                await _retrying(
                    lambda job_id=job_id, attempt=attempt: worker.finish(job_id, attempt)
                )
            # Submissions keep working with the catalog seen before the restart.
            late = await h.submit({"task": "noop"})
            assert late.status_code == 202, late.text
            jobs.append(late.json()["id"])

            worker.paused = False
            async with running(worker):

                async def all_succeeded() -> list[JobStatus]:
                    statuses = [(await h.job(j)).status for j in jobs]
                    return statuses if set(statuses) == {JobStatus.SUCCEEDED} else []

                await wait_until(all_succeeded, timeout=45)

            assert len(jobs) == 7
            assert sorted({job_id for job_id, _ in worker.ran}) == sorted(jobs)
            # The lost messages were re-published as the same attempt: each job ran once.
            assert len(worker.ran) == 7
            lost = [j for j in jobs[:6] if j not in {t[0] for t in running_now if t}]
            for job_id in lost:
                types = [e.type for e in await h.events_of(job_id)]
                assert types[0] == "republished", types
                assert types[-1] == "succeeded"
            groups = await h.redis.xinfo_groups(h.keys.events_stream)
            assert [g["name"] for g in groups] == [h.keys.events_group.encode()]
    finally:
        await client.aclose()


async def test_a_cancel_while_redis_is_down_reaches_the_workers_when_it_returns(
    harness_factory: Any, own_redis_server: Any, wait_until: Any
) -> None:
    server = own_redis_server()
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    try:
        async with harness_factory(redis_url=server.url, redis_client=client) as h:
            await h.seed_catalog()
            job_id = (await h.submit({"task": "noop"})).json()["id"]

            async def queued() -> bool:
                return (await h.job(job_id)).status == JobStatus.QUEUED

            await wait_until(queued)
            server.stop()

            response = await h.client.post(f"/internal/v1/jobs/{job_id}/cancel")

            assert response.status_code == 200, response.text
            assert response.json()["status"] == "CANCELLED"
            server.start()  # empty, as it happens: only the relay can tell the workers now

            async def signalled() -> bool:
                return bool(await _retrying(lambda: h.redis.exists(h.keys.cancel(job_id))))

            await wait_until(signalled, timeout=30)
            assert (await h.job(job_id)).status == JobStatus.CANCELLED
    finally:
        await client.aclose()
