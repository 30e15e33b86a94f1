"""Cancelling a running job stops its task, in every pool: the lease heartbeat sees the cancel
key job-service writes and interrupts the task, which reports `failed` `Cancelled` (never
retried); the worker goes on working."""

from __future__ import annotations

import httpx
import pytest

from conveyor_common.events import EventType

pytestmark = pytest.mark.integration

POOLS = ("prefork", "solo", "threads")


@pytest.fixture(scope="module")
def workers(module_worker_factory):
    """One worker per pool, each on a queue of its own."""
    started = {
        pool: module_worker_factory(
            pool=pool,
            concurrency=2,
            wait=False,
            env={
                "CONVEYOR_TASK_MODULES": "fault_tasks",
                "CONVEYOR_WORKER_QUEUES": f"q-{pool}",
                "CONVEYOR_LEASE_TTL_SECONDS": "3",
                "CONVEYOR_CANCEL_CHECK_INTERVAL_SECONDS": "0.2",
            },
        )
        for pool in POOLS
    }
    for worker in started.values():
        worker.wait_ready()
    return started


# A blocking sleep where a signal can cut it short (the task runs on its process's main
# thread); Python code for the threads pool, whose interruption waits for the next instruction.
TASKS = {"prefork": "fault.record", "solo": "fault.record", "threads": "fault.spin"}


@pytest.mark.parametrize("pool", POOLS)
def test_cancel_stops_a_running_task(workers, pool, notes, eventually):
    worker = workers[pool]
    queue = f"q-{pool}"
    job_id = worker.submit(TASKS[pool], {"path": str(notes.path), "seconds": 60}, queue=queue)
    worker.wait_events(job_id, until={EventType.STARTED})
    eventually(lambda: notes.starts(job_id), 10, "the task body started")

    worker.client.set(worker.keys.cancel(str(job_id)), "1", ex=600)

    failed = worker.final_event(job_id, timeout=20)
    assert failed.type == EventType.FAILED
    assert (failed.error_type, failed.retryable) == ("Cancelled", False)
    assert failed.error_message == "the job was cancelled while it ran"
    assert notes.ends(job_id) == []  # stopped, not finished
    record = worker.result(job_id)
    assert record["status"] == "FAILURE"
    assert record["result"]["exc_message"][:2] == ["acme", "Cancelled"]
    assert not worker.client.exists(worker.keys.lease(str(job_id)))

    # The same process goes on: the next job on that queue runs to the end.
    after = worker.submit("fault.record", {"path": str(notes.path)}, queue=queue)
    assert worker.final_event(after).type == EventType.SUCCEEDED
    assert len(notes.ends(after)) == 1

    metrics = httpx.get(f"{worker.url}/metrics").text
    assert any(
        line.startswith("conveyor_worker_tasks_total{")
        and 'outcome="cancelled"' in line
        and f'task="{TASKS[pool]}"' in line
        for line in metrics.splitlines()
    )
