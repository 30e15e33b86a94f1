"""job-service killed at the worst moments: after committing jobs it has not published, and
while it holds lifecycle events it has read but not acknowledged. Nothing is lost, nothing is
applied twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from conveyor_devstack.redis_server import RedisServer
from conveyor_devstack.stack import JOB_SERVICE, Stack
from conveyor_testing.api import wait_all_final

from .conftest import api

pytestmark = [pytest.mark.fault]


def test_killed_after_commit_before_publish(
    fault_stack: Callable[..., Stack], own_redis_server: Callable[..., RedisServer]
) -> None:
    server = own_redis_server()
    stack = fault_stack(redis_url=server.url, probe_redis_url=server.url)
    key = stack.create_api_key("acme", "fault")
    with api(stack, key) as client:
        # With Redis unreachable the relay cannot publish, so these commits are exactly the
        # "committed, not yet published" state; then job-service dies with them.
        server.stop()
        batch = client.post(
            "/v1/jobs/batch", json={"jobs": [{"task": "echo", "args": {"n": i}} for i in range(50)]}
        )
        assert batch.status_code == 202, batch.text
        ids = [job["id"] for job in batch.json()["jobs"]]
        stack.kill_process(JOB_SERVICE)
        server.start()
        stack.start_process(JOB_SERVICE)
        final = wait_all_final(client, ids, key, timeout=45)
    assert {job["status"] for job in final.values()} == {"SUCCEEDED"}


def test_killed_while_holding_unacked_lifecycle_events(fault_stack: Callable[..., Stack]) -> None:
    stack = fault_stack(worker_concurrency=2)
    key = stack.create_api_key("acme", "fault")
    with api(stack, key) as client:
        ids: list[str] = []
        for round_ in range(3):
            batch = client.post(
                "/v1/jobs/batch",
                json={
                    "jobs": [{"task": "echo", "args": {"n": i, "r": round_}} for i in range(100)]
                },
            )
            ids += [job["id"] for job in batch.json()["jobs"]]
            time.sleep(0.3)
            # Mid-stream: events read into the dead reader's pending list are never acked by it;
            # the restarted service must claim them.
            stack.kill_process(JOB_SERVICE)
            time.sleep(0.5)
            stack.start_process(JOB_SERVICE)
        final = wait_all_final(client, ids, key, timeout=50)
        assert {job["status"] for job in final.values()} == {"SUCCEEDED"}

        # Applied once: each job's history has one started and one succeeded for attempt 1.
        for job_id in ids[:: len(ids) // 10]:
            events = client.get(f"/v1/jobs/{job_id}/events").json()["items"]
            counts = Counter((e["attempt"], e["type"]) for e in events)
            assert counts[(1, "started")] == 1, events
            assert counts[(1, "succeeded")] == 1, events
