"""A task that kills its own process: Celery's `task_reject_on_worker_lost` puts the message
back at once, and the attempt fence turns that copy into a skip, so the attempt never runs
twice. The lease is left to expire for job-service's reconciler, which decides what follows."""

from __future__ import annotations

import pytest

from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType

pytestmark = pytest.mark.integration

LEASE_TTL = 2


def test_a_crashed_attempt_is_not_run_again_by_the_redelivery(worker_factory, notes, eventually):
    worker = worker_factory(
        pool="prefork",
        concurrency=1,
        env={"CONVEYOR_TASK_MODULES": "fault_tasks", "CONVEYOR_LEASE_TTL_SECONDS": str(LEASE_TTL)},
    )
    job_id = worker.submit("fault.crash", {"path": str(notes.path)}, attempt=3)

    events = worker.wait_events(job_id, until={EventType.SKIPPED})
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.STARTED, EventType.SKIPPED]
    assert events[-1].error_message == "already-started"
    assert events[-1].attempt == 3
    assert len(notes.starts(job_id)) == 1  # one run, one crash
    # No outcome is stored: job-service's reconciler finds nothing and records the lost worker.
    assert not worker.client.exists(worker.keys.result(str(job_id)))

    # The lease of the dead process is not renewed by anyone: it expires.
    lease = worker.keys.lease(str(job_id))
    eventually(lambda: not worker.client.exists(lease), LEASE_TTL + 5, "the lease expired")
    assert worker.client.get(worker.keys.fence(str(job_id))) == b"3"

    # The pool replaced the process and goes on; the job's next attempt (which job-service
    # publishes after the lease expired) runs.
    next_attempt = TaskEnvelope(
        job_id=job_id,
        tenant_id="acme",
        task="fault.record",
        attempt=4,
        args={"path": str(notes.path)},
        timeout_seconds=60,
    )
    worker.publish(next_attempt)
    eventually(
        lambda: any(e.type == EventType.SUCCEEDED for e in worker.events(job_id)),
        30,
        "attempt 4 succeeded",
    )
    assert [row[2] for row in notes.starts(job_id)] == ["3", "4"]
    assert worker.process.alive()
