"""Delays wait in PostgreSQL, not as broker ETA messages; cancellation is a PostgreSQL state
that survives restarts of every process."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor_devstack.stack import JOB_SERVICE, Stack
from conveyor_testing.api import wait_final, wait_status

from .conftest import api

pytestmark = [pytest.mark.fault]


def test_run_at_beyond_the_visibility_timeout_runs_once_on_time(
    fault_stack: Callable[..., Stack], probe: Callable[[str], list[tuple[str, int, float]]]
) -> None:
    # A visibility timeout of a few seconds (the longest time limit shrunk to match) makes
    # "further away than the visibility timeout" testable in seconds, not hours.
    stack = fault_stack(
        extra_env={"CONVEYOR_MAX_TIMEOUT_SECONDS": "5", "CONVEYOR_VISIBILITY_MARGIN_SECONDS": "3"}
    )
    key = stack.create_api_key("acme", "fault")
    run_at = datetime.now(UTC) + timedelta(seconds=15)  # visibility timeout: 5 + 3 = 8 s
    with api(stack, key) as client:
        job = client.post(
            "/v1/jobs",
            json={"task": "fault.slow", "args": {"seconds": 0}, "timeout_seconds": 5,
                  "run_at": run_at.isoformat()},
        ).json()  # fmt: skip
        assert job["status"] == "SCHEDULED"
        final = wait_final(client, job["id"], key, timeout=40)
        assert final["status"] == "SUCCEEDED"
        time.sleep(10)  # past another visibility timeout: a redelivered ETA copy would run now
    starts = [t for what, _, t in probe(job["id"]) if what == "start"]
    assert len(starts) == 1
    assert run_at.timestamp() <= starts[0] <= run_at.timestamp() + 3


def test_cancel_while_queued_survives_restarts_and_the_job_never_runs(
    fault_stack: Callable[..., Stack], probe: Callable[[str], list[tuple[str, int, float]]]
) -> None:
    stack = fault_stack(workers=1, worker_concurrency=1)
    key = stack.create_api_key("acme", "fault")
    worker = stack.worker_names[0]
    with api(stack, key) as client:
        stack.stop_process(worker)  # nothing consumes: the job stays QUEUED in Redis
        job = client.post("/v1/jobs", json={"task": "fault.slow", "args": {"seconds": 0}}).json()
        wait_status(client, job["id"], "QUEUED")
        cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "CANCELLED"
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200  # harmless again

        stack.restart_process(JOB_SERVICE)
        stack.start_process(worker)  # the message is still in Redis; the worker must skip it
        time.sleep(8)
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "CANCELLED"
    assert probe(job["id"]) == []


def test_cancel_while_running_stops_it_and_a_late_success_does_not_overwrite(
    fault_stack: Callable[..., Stack],
    probe: Callable[[str], list[tuple[str, int, float]]],
    redis_client: Any,
) -> None:
    from conveyor_common.events import EventType, LifecycleEvent
    from conveyor_common.redis_keys import RedisKeys

    stack = fault_stack(workers=1, worker_concurrency=1)
    key = stack.create_api_key("acme", "fault")
    with api(stack, key) as client:
        job = client.post("/v1/jobs", json={"task": "fault.slow", "args": {"seconds": 20}}).json()
        running = wait_status(client, job["id"], "RUNNING")
        assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "CANCELLED"
        stack.restart_process(JOB_SERVICE)

        # A success for the cancelled attempt, arriving late (as if from a slow worker).
        late = LifecycleEvent(
            job_id=job["id"], tenant_id=job.get("tenant_id", "acme"), attempt=running["attempts"],
            type=EventType.SUCCEEDED, at=datetime.now(UTC), task="fault.slow", duration_ms=1.0,
        )  # fmt: skip
        redis_client.xadd(
            RedisKeys(stack.config.redis_namespace).events_stream, late.to_stream_fields()
        )
        time.sleep(5)
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "CANCELLED"
        assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    # The body started once and was stopped: it never reached its end.
    records = probe(job["id"])
    assert [r[0] for r in records] == ["start"]
