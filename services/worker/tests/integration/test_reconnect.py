"""A worker whose Redis goes away stops being ready, and when Redis is back it consumes again
(pitfall #8: a worker that silently stops consuming)."""

from __future__ import annotations

import time

import httpx
import pytest

from conveyor_common.events import EventType

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def wait_status(url: str, status: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2).status_code
        except httpx.HTTPError as exc:
            last = repr(exc)
        if last == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} answered {last}, not {status}, within {timeout}s")


def test_readiness_follows_redis_and_consumption_resumes(own_redis_server, worker_factory):
    server = own_redis_server()
    worker = worker_factory(
        redis_url=server.url, pool="solo", env={"CONVEYOR_HEARTBEAT_INTERVAL_SECONDS": "1"}
    )
    assert worker.final_event(worker.submit("echo", {"before": 1})).type == EventType.SUCCEEDED

    server.stop()
    wait_status(f"{worker.url}/readyz", 503)
    assert httpx.get(f"{worker.url}/healthz").status_code == 200  # alive, just not ready

    server.start()  # same port, empty: no persistence
    wait_status(f"{worker.url}/readyz", 200)
    job_id = worker.submit("echo", {"after": 2})
    assert worker.final_event(job_id).type == EventType.SUCCEEDED
    # The heartbeat puts back what the restart lost.
    deadline = time.monotonic() + 20
    while worker.client.hget(worker.keys.catalog, "echo") is None:
        assert time.monotonic() < deadline, "catalog not re-advertised"
        time.sleep(0.2)
