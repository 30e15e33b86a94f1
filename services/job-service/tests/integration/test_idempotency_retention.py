"""The Idempotency-Key retention window (`CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS`): inside it
a key answers the job(s) it named; once it is over the same key submits anew, the old job keeps
everything but its key, and concurrent reuses still store one job. The service's clock is moved
through a dependency override; the window is an hour here (not the default day), which shows
the setting reaches the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect

from job_service.db import SessionDep
from job_service.deps import CatalogDep, SettingsDep, TimeLimitsDep
from job_service.jobs.endpoints import get_job_service, get_submit_service
from job_service.jobs.service import JobService
from job_service.models import Job

WINDOW = timedelta(hours=1)
BODY = {"task": "echo", "args": {"x": 7}}
BATCH = {"jobs": [{"task": "echo", "args": {"x": i}} for i in range(3)]}
COLUMNS = [attr.key for attr in inspect(Job).column_attrs]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Clocked:
    h: Any
    clock: Clock

    async def submit(self, body: dict[str, Any], key: str, tenant: str | None = None) -> Any:
        return await self.h.submit(body, headers=_headers(key, tenant))

    async def submit_batch(self, body: dict[str, Any], key: str) -> Any:
        return await self.h.client.post(
            "/internal/v1/jobs/batch", json=body, headers=_headers(key, None)
        )

    async def row(self, job_id: str) -> dict[str, Any]:
        job = await self.h.job(job_id)
        return {name: getattr(job, name) for name in COLUMNS}


def _headers(key: str, tenant: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} | ({"X-Conveyor-Tenant": tenant} if tenant else {})


def _ids(response: Any) -> list[str]:
    return [job["id"] for job in response.json()["jobs"]]


@pytest.fixture
async def clocked(harness_factory: Any) -> AsyncIterator[Clocked]:
    async with harness_factory(
        background_tasks=False, idempotency_retention_seconds=int(WINDOW.total_seconds())
    ) as h:
        await h.seed_catalog()
        clock = Clock(datetime.now(UTC))

        async def service(
            session: SessionDep,
            catalog: CatalogDep,
            time_limits: TimeLimitsDep,
            settings: SettingsDep,
        ) -> JobService:
            job_service = await get_job_service(session, catalog, time_limits, settings)
            job_service.clock = clock
            return job_service

        h.app.dependency_overrides[get_job_service] = service
        h.app.dependency_overrides[get_submit_service] = service
        try:
            yield Clocked(h, clock)
        finally:
            h.app.dependency_overrides.clear()


async def test_a_key_answers_its_job_inside_the_window_and_a_new_one_after(
    clocked: Clocked,
) -> None:
    c = clocked
    first = await c.submit(BODY, "order-1")
    c.clock.advance(WINDOW - timedelta(seconds=1))
    inside = await c.submit(BODY, "order-1")
    before = await c.row(first.json()["id"])

    c.clock.advance(timedelta(seconds=1))
    after = await c.submit(BODY, "order-1")
    c.clock.advance(timedelta(seconds=1))
    replay_of_new = await c.submit(BODY, "order-1")

    assert (first.status_code, inside.status_code) == (202, 200)
    assert inside.json()["id"] == first.json()["id"]
    assert after.status_code == 202, after.text
    assert after.json()["id"] != first.json()["id"]
    assert after.json()["idempotency_key"] == "order-1"
    assert (replay_of_new.status_code, replay_of_new.json()["id"]) == (200, after.json()["id"])
    # The old job keeps everything but its key.
    assert await c.row(first.json()["id"]) == before | {"idempotency_key": None}
    assert before["idempotency_key"] == "order-1"
    assert await c.h.count(Job) == 2
    assert await c.h.outbox_size() == 2


async def test_after_the_window_another_body_is_a_new_job_not_a_reused_key(
    clocked: Clocked,
) -> None:
    c = clocked
    assert (await c.submit(BODY, "order-2")).status_code == 202
    c.clock.advance(WINDOW + timedelta(minutes=5))

    other = await c.submit({"task": "echo", "args": {"x": 8}}, "order-2")
    # From now on the key names the new job, so the first body is the one that differs.
    first_again = await c.submit(BODY, "order-2")

    assert other.status_code == 202, other.text
    assert first_again.status_code == 422
    assert first_again.json()["type"] == "urn:conveyor:problem:idempotency-key-reused"
    assert await c.h.count(Job) == 2


async def test_a_batch_key_expires_with_its_jobs(clocked: Clocked) -> None:
    c = clocked
    first = await c.submit_batch(BATCH, "batch-1")
    c.clock.advance(WINDOW - timedelta(seconds=1))
    inside = await c.submit_batch(BATCH, "batch-1")
    c.clock.advance(timedelta(seconds=1))
    after = await c.submit_batch(BATCH, "batch-1")

    assert (first.status_code, inside.status_code, after.status_code) == (202, 200, 202)
    assert _ids(inside) == _ids(first)
    assert set(_ids(after)).isdisjoint(_ids(first))
    assert [job["idempotency_key"] for job in after.json()["jobs"]] == [
        "batch-1 #0",
        "batch-1 #1",
        "batch-1 #2",
    ]
    for job_id in _ids(first):
        assert (await c.h.job(job_id)).idempotency_key is None
    assert await c.h.count(Job) == 6


async def test_reuse_releases_only_the_reused_key_of_that_tenant(clocked: Clocked) -> None:
    c = clocked
    ours = (await c.submit(BODY, "order-3")).json()["id"]
    theirs = (await c.submit(BODY, "order-3", tenant="globex")).json()["id"]
    expired_not_reused = (await c.submit(BODY, "order-4")).json()["id"]
    c.clock.advance(WINDOW)
    live = (await c.submit(BODY, "order-5")).json()["id"]

    assert (await c.submit(BODY, "order-3")).status_code == 202

    assert (await c.h.job(ours)).idempotency_key is None
    # Another tenant's key, an expired key nobody reused and a live key keep theirs.
    assert (await c.h.job(theirs)).idempotency_key == "order-3"
    assert (await c.h.job(expired_not_reused)).idempotency_key == "order-4"
    assert (await c.h.job(live)).idempotency_key == "order-5"
    assert await c.h.count(Job, Job.idempotency_key.is_(None)) == 1


async def test_concurrent_reuses_after_the_window_store_one_job(clocked: Clocked) -> None:
    c = clocked
    single = await c.submit(BODY, "order-6")
    batch = await c.submit_batch(BATCH, "batch-6")
    c.clock.advance(WINDOW * 2)

    singles, batches = await asyncio.gather(
        asyncio.gather(*(c.submit(BODY, "order-6") for _ in range(6))),
        asyncio.gather(*(c.submit_batch(BATCH, "batch-6") for _ in range(6))),
    )

    for answers in (singles, batches):
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) <= {200, 202, 409}, [answer.text for answer in answers]
        assert statuses.count(202) == 1
    [new_single] = {a.json()["id"] for a in singles if a.status_code < 300}
    [new_batch] = {tuple(_ids(a)) for a in batches if a.status_code < 300}
    assert new_single != single.json()["id"]
    assert set(new_batch).isdisjoint(_ids(batch))
    # The originals and one new single job and batch; only the new ones hold the keys.
    assert await c.h.count(Job) == 2 * (1 + 3)
    assert await c.h.count(Job, Job.idempotency_key.is_not(None)) == 1 + 3
