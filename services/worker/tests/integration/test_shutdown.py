"""SIGTERM to the worker's main process (what Kubernetes sends to PID 1) is a warm shutdown:
the running task finishes and reports before the process exits."""

from __future__ import annotations

import pytest

from conveyor_common.events import EventType

pytestmark = pytest.mark.integration


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
