"""SIGTERM to the worker's main process (what Kubernetes sends to PID 1) is a warm shutdown:
running tasks finish and report before the process exits, within
`CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS`; a task that would take longer is cut short, and its
lease is left to expire so job-service's reconciler gives the job its next attempt."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conveyor_common.events import EventType

pytestmark = pytest.mark.integration

GRACE = 2
LEASE_TTL = 3


def test_sigterm_lets_the_running_task_finish(worker_factory):
    worker = worker_factory(concurrency=1)
    job_id = worker.submit("sleep", {"seconds": 2})
    worker.wait_events(job_id, until={EventType.STARTED})

    returncode = worker.process.terminate(timeout=30)

    assert returncode == 0, worker.process.tail()
    events = worker.events(job_id)
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.STARTED, EventType.SUCCEEDED]
    assert worker.result(job_id)["result"]["value"]["slept_seconds"] >= 2
    # It said goodbye: its live-worker key is gone at once, not after the TTL.
    assert list(worker.client.scan_iter(match=worker.keys.worker("*"))) == []
    assert not worker.client.exists(worker.keys.lease(str(job_id)))


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_tasks_longer_than_the_grace_are_cut_short(worker_factory, notes, eventually):
    # prefork (the task runs in a pool process) and solo (in the main process), side by side.
    workers = {
        pool: worker_factory(
            pool=pool,
            concurrency=1,
            wait=False,
            env={
                "CONVEYOR_TASK_MODULES": "fault_tasks",
                "CONVEYOR_WORKER_QUEUES": f"q-{pool}",
                "CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE),
                "CONVEYOR_LEASE_TTL_SECONDS": str(LEASE_TTL),
            },
        )
        for pool in ("prefork", "solo")
    }
    jobs = {}
    for pool, worker in workers.items():
        worker.wait_ready()
        jobs[pool] = worker.submit(
            "fault.record", {"path": str(notes.path), "seconds": 60}, queue=f"q-{pool}"
        )
    for pool, worker in workers.items():
        worker.wait_events(jobs[pool], until={EventType.STARTED})
        eventually(lambda job=jobs[pool]: notes.starts(job), 10, f"{pool}: the task started")

    for worker in workers.values():
        assert worker.process.process is not None
        worker.process.process.send_signal(signal.SIGTERM)
    for pool, worker in workers.items():
        assert worker.process.process is not None
        returncode = worker.process.process.wait(timeout=GRACE + 10)
        assert returncode == 1, f"{pool}:\n{worker.process.tail()}"
        assert "worker.shutdown_grace_expired" in worker.process.read_log()

    client, keys = workers["solo"].client, workers["solo"].keys
    for pool, job_id in jobs.items():
        task_pid = int(notes.starts(job_id)[0][3])
        # The process that ran the task went with it: left alive, it would finish the task
        # (and renew its lease) after the worker said it stopped.
        eventually(lambda pid=task_pid: not running(pid), 5, f"{pool}: the task's process is gone")
        assert notes.ends(job_id) == []
        events = [e.type for e in workers[pool].events(job_id)]
        assert events == [EventType.RECEIVED, EventType.STARTED], pool
        assert not client.exists(keys.result(str(job_id)))
        # The lease is left to expire (nobody renews it), for job-service's reconciler.
        assert client.get(keys.lease(str(job_id))) is not None, pool
    assert list(client.scan_iter(match=keys.worker("*"))) == []  # both said goodbye

    for pool, job_id in jobs.items():
        lease = keys.lease(str(job_id))
        eventually(lambda lease=lease: not client.exists(lease), LEASE_TTL + 5, f"{pool}: expiry")
        assert client.get(keys.fence(str(job_id))) == b"1"
