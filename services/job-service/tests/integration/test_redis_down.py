"""A job accepted while Redis is down is published once Redis is back (delivery guarantee 1)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError

from conveyor_common.statuses import JobStatus

pytestmark = pytest.mark.fault


async def test_a_job_accepted_while_redis_is_down_is_published_when_it_returns(
    harness_factory: Any, own_redis_server: Any, wait_until: Any
) -> None:
    server = own_redis_server()
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    try:
        async with harness_factory(redis_url=server.url, redis_client=client) as h:
            await h.seed_catalog()
            warm = await h.submit({"task": "echo", "args": {"x": 0}})  # the catalog is now known
            assert warm.status_code == 202

            async def warm_published() -> bool:
                return await h.outbox_size() == 0

            await wait_until(warm_published)

            server.stop()
            response = await h.submit({"task": "echo", "args": {"x": 1}})
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            assert (await h.job(job_id)).status == JobStatus.PENDING
            ready = await h.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"].startswith("unavailable")

            server.start()  # same port, empty (no persistence)

            async def published() -> list[dict[str, Any]]:
                if await h.outbox_size():
                    return []
                try:
                    return await h.queue_messages("default")
                except ConnectionError:  # the test's own client meets the restart too
                    return []

            [message] = await wait_until(published, timeout=30)
            assert message["headers"]["id"] == job_id
            job = await h.job(job_id)
            assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)

            async def ready() -> bool:
                return (await h.client.get("/readyz")).status_code == 200

            await wait_until(ready)
    finally:
        await client.aclose()


async def test_the_catalog_is_read_ahead_so_a_first_submit_works_with_redis_down(
    harness_factory: Any, own_redis_server: Any, wait_until: Any
) -> None:
    server = own_redis_server()
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    try:
        async with harness_factory(redis_url=server.url, redis_client=client) as h:
            await h.seed_catalog()

            async def catalog_cached() -> bool:
                return "echo" in h.app.state.catalog.cached_tasks

            await wait_until(catalog_cached)  # read in the background: no request asked yet
            server.stop()

            response = await h.submit({"task": "echo", "args": {"x": 1}})

            assert response.status_code == 202, response.text
            assert (await h.job(response.json()["id"])).status == JobStatus.PENDING
    finally:
        await client.aclose()
