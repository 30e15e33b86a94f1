"""PostgreSQL stopped for a few seconds during a stream of submits: every answer is 202 or a 503
problem+json with Retry-After (never a 500, never a hang), and the service recovers by itself:
every 202'd job is published once the database is back, with no restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from conveyor_common.statuses import JobStatus
from job_service.app import create_app
from job_service.config import Settings
from job_service.migrate import upgrade

from .conftest import CATALOG, INTERNAL_TOKEN, TENANT, Harness

pytestmark = pytest.mark.fault

# Not a speed assertion: a request still unanswered after this long is a hang.
HANG = 20.0


async def test_submits_while_postgres_is_down_are_202_or_503_and_it_recovers(
    own_postgres_server: Any,
    redis_async: Any,
    redis_backend: Any,
    redis_namespace: str,
    wait_until: Any,
) -> None:
    server = own_postgres_server()
    await asyncio.to_thread(upgrade, server.url)
    settings = Settings(
        environment="test",
        internal_token=INTERNAL_TOKEN,
        database_url=server.url,
        redis_url=redis_backend.url,
        redis_namespace=redis_namespace,
        relay_sweep_seconds=0.1,
        relay_backoff_max_seconds=0.5,
        events_block_ms=100,
        promoter_interval_seconds=0.1,
        catalog_cache_seconds=0.0,
        lease_ttl_seconds=120.0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://job-service",
            headers={INTERNAL_TOKEN_HEADER: INTERNAL_TOKEN, TENANT_HEADER: TENANT},
        ) as client:
            h = Harness(app, client, redis_async, settings)
            await h.seed_catalog(CATALOG)
            answers: list[httpx.Response] = []
            outage_over = asyncio.Event()

            async def submit_until_recovered() -> None:
                while not outage_over.is_set() or len(answers) < 5:
                    body = {"task": "noop", "metadata": {"n": str(len(answers))}}
                    answers.append(await asyncio.wait_for(h.submit(body), HANG))
                    await asyncio.sleep(0.05)

            async def outage() -> None:
                await asyncio.sleep(0.5)
                await asyncio.to_thread(server.stop)
                down_until = time.monotonic() + 3
                while time.monotonic() < down_until:
                    await asyncio.sleep(0.1)
                await asyncio.to_thread(server.start)
                await asyncio.sleep(1.0)
                outage_over.set()

            await asyncio.gather(submit_until_recovered(), outage())

            statuses = {response.status_code for response in answers}
            assert statuses <= {202, 503}, [
                r.text for r in answers if r.status_code not in (202, 503)
            ]
            unavailable = [r for r in answers if r.status_code == 503]
            accepted = [r.json()["id"] for r in answers if r.status_code == 202]
            assert unavailable, "the outage was never seen"
            assert accepted
            for response in unavailable:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"]
                assert response.json()["type"] == "urn:conveyor:problem:service-unavailable"

            # Recovered without a restart: requests work and every 202'd job gets published.
            async def all_queued() -> bool:
                for job_id in accepted:
                    response = await client.get(f"/internal/v1/jobs/{job_id}")
                    if response.status_code != 200 or response.json()["status"] != "QUEUED":
                        return False
                return True

            await wait_until(all_queued, timeout=30)
            published = {m["headers"]["id"] for m in await h.queue_messages()}
            assert set(accepted) <= published
            assert (await client.get("/readyz")).status_code == 200
            after = await h.submit({"task": "noop"})
            assert after.status_code == 202
            assert uuid.UUID(after.json()["id"])
            assert (await h.job(after.json()["id"])).status in (JobStatus.PENDING, JobStatus.QUEUED)
