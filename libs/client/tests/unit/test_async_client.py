"""AsyncClient against the stand-in API, in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor_client import AsyncClient, ConveyorAPIError, ConveyorTimeout


@pytest.fixture
async def client(api_app: FastAPI, api: Any, api_key: str) -> AsyncIterator[AsyncClient]:
    transport = httpx.ASGITransport(app=api_app)
    async with AsyncClient("http://api.test", api_key, transport=transport) as client:
        yield client


async def test_submit_sends_the_job_and_options(client: AsyncClient, api: Any) -> None:
    run_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = await client.submit(
        "echo", {"n": 1}, queue="reports", priority=5, run_at=run_at, idempotency_key="k-1"
    )

    assert job["task"] == "echo"
    assert job["idempotency_key"] == "k-1"
    method, path, headers, body = api.requests[-1]
    assert (method, path) == ("POST", "/v1/jobs")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "task": "echo",
        "args": {"n": 1},
        "queue": "reports",
        "priority": 5,
        "run_at": "2030-01-02T03:04:05+00:00",
    }


async def test_submit_batch(client: AsyncClient) -> None:
    answer = await client.submit_batch([{"task": "echo"}, {"task": "echo", "args": {"a": 1}}])
    assert [j["task"] for j in answer["jobs"]] == ["echo", "echo"]


async def test_wait_then_result(client: AsyncClient) -> None:
    job = await client.submit("echo", {"x": 2})

    final = await client.wait(job["id"], timeout=10, poll_interval=0.01)

    assert final["status"] == "SUCCEEDED"
    assert await client.result(job["id"]) == {"echo": {"x": 2}}


async def test_wait_polls_through_a_brief_outage(client: AsyncClient) -> None:
    job = await client.submit("flaky")
    final = await client.wait(job["id"], timeout=10, poll_interval=0.01)
    assert final["status"] == "SUCCEEDED"


async def test_wait_gives_up(client: AsyncClient) -> None:
    job = await client.submit("never")
    with pytest.raises(ConveyorTimeout) as info:
        await client.wait(job["id"], timeout=0.05, poll_interval=0.01)
    assert info.value.last_status == "PENDING"
    assert isinstance(info.value, TimeoutError)


async def test_list_iterates_every_page(client: AsyncClient) -> None:
    submitted = [(await client.submit("echo", {"i": i}))["id"] for i in range(5)]

    seen = [job["id"] async for job in client.list(page_size=2)]

    assert seen == list(reversed(submitted))


async def test_problem_is_raised_with_its_members(client: AsyncClient) -> None:
    with pytest.raises(ConveyorAPIError) as info:
        await client.submit("reject")

    error = info.value
    assert error.status == 422
    assert error.slug == "validation-error"
    assert error.errors == [{"field": "body.priority", "reason": "too big"}]
    assert error.request_id == "req-fake"


async def test_result_of_unfinished_job(client: AsyncClient) -> None:
    job = await client.submit("never")
    with pytest.raises(ConveyorAPIError) as info:
        await client.result(job["id"])
    assert info.value.status == 409
    assert info.value.extra == {"status": "PENDING"}


async def test_tasks(client: AsyncClient) -> None:
    assert (await client.tasks())["tasks"][0]["name"] == "echo"


async def test_wrong_key(api_app: FastAPI, api: Any) -> None:
    transport = httpx.ASGITransport(app=api_app)
    async with AsyncClient("http://api.test", "cvk_wrong", transport=transport) as client:
        with pytest.raises(ConveyorAPIError) as info:
            await client.tasks()
    assert info.value.status == 401
