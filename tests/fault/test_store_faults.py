"""Redis and PostgreSQL stopped, restarted or emptied under load: every job answered 202
reaches exactly one final state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from conveyor_devstack.redis_server import RedisServer
from conveyor_devstack.stack import Stack
from conveyor_testing.api import wait_all_final
from conveyor_testing.databases import asyncpg_url, fresh_database
from conveyor_testing.postgres_server import PostgresServer

from .conftest import api

pytestmark = [pytest.mark.fault]


def submit_burst(
    client: httpx.Client, count: int, pause: float
) -> tuple[list[str], list[httpx.Response]]:
    accepted: list[str] = []
    refused: list[httpx.Response] = []
    for i in range(count):
        try:
            answer = client.post("/v1/jobs", json={"task": "echo", "args": {"n": i}})
        except httpx.HTTPError as exc:  # a hang or a dropped connection is a failure too
            raise AssertionError(f"submit {i} did not answer: {exc!r}") from exc
        if answer.status_code == 202:
            accepted.append(answer.json()["id"])
        else:
            refused.append(answer)
        time.sleep(pause)
    return accepted, refused


def assert_refusals_are_503_problems(refused: list[httpx.Response]) -> None:
    for answer in refused:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "retry-after" in answer.headers


def test_redis_stopped_during_a_burst_then_started(
    fault_stack: Callable[..., Stack], own_redis_server: Callable[..., RedisServer]
) -> None:
    server = own_redis_server()
    stack = fault_stack(redis_url=server.url, probe_redis_url=server.url)
    key = stack.create_api_key("acme", "fault")
    with api(stack, key) as client:
        accepted, refused = submit_burst(client, 10, 0.02)
        server.stop()
        more, refused_more = submit_burst(client, 20, 0.05)
        server.start()  # same port, no data: whatever was queued in it is gone
        rest, refused_rest = submit_burst(client, 10, 0.02)
        ids = accepted + more + rest
        assert_refusals_are_503_problems(refused + refused_more + refused_rest)
        assert more, "jobs must be accepted while Redis is down"
        final = wait_all_final(client, ids, key, timeout=50)
    assert {job["status"] for job in final.values()} == {"SUCCEEDED"}


def test_redis_restarted_empty_while_jobs_are_queued_and_running(
    fault_stack: Callable[..., Stack], own_redis_server: Callable[..., RedisServer]
) -> None:
    server = own_redis_server()
    stack = fault_stack(redis_url=server.url, probe_redis_url=server.url, worker_concurrency=2)
    key = stack.create_api_key("acme", "fault")
    with api(stack, key) as client:
        slow = [
            client.post("/v1/jobs", json={"task": "sleep", "args": {"seconds": 3}}).json()["id"]
            for _ in range(2)
        ]
        queued = [
            client.post("/v1/jobs", json={"task": "echo", "args": {"n": i}}).json()["id"]
            for i in range(20)
        ]
        time.sleep(1.0)  # the two sleeps run, the echoes wait behind them
        server.restart()  # all of Redis's data is lost
        final = wait_all_final(client, slow + queued, key, timeout=55)
    assert {job["status"] for job in final.values()} == {"SUCCEEDED"}


def test_postgres_stopped_for_five_seconds_during_a_burst(
    fault_stack: Callable[..., Stack], own_postgres_server: Callable[[], PostgresServer]
) -> None:
    server = own_postgres_server()
    database = fresh_database(server.url)
    stack = fault_stack(database_url=asyncpg_url(database))
    key = stack.create_api_key("acme", "fault")
    accepted: list[str] = []
    refused: list[httpx.Response] = []
    with api(stack, key) as client:
        done = threading.Event()

        def burst() -> None:
            while not done.is_set():
                ids, bad = submit_burst(client, 5, 0.05)
                accepted.extend(ids)
                refused.extend(bad)

        thread = threading.Thread(target=burst)
        thread.start()
        time.sleep(1.0)
        server.stop()
        time.sleep(5.0)
        server.start()
        time.sleep(2.0)
        done.set()
        thread.join(30)
        assert_refusals_are_503_problems(refused)
        assert refused, "some submits must have met the database down"
        final = wait_all_final(client, accepted, key, timeout=45)
    assert {job["status"] for job in final.values()} == {"SUCCEEDED"}
