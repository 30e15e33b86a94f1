"""Never twice at once: two real worker processes, fed the same message twice, run its task body
once; a redelivery after the attempt finished, or a message for a cancelled job, never runs."""

from __future__ import annotations

import uuid

import pytest

from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent

pytestmark = pytest.mark.integration

LEASE_TTL = 3
DONE = {EventType.SUCCEEDED, EventType.FAILED, EventType.SKIPPED}


@pytest.fixture(scope="module")
def workers(module_worker_factory):
    # One message at a time each (prefork, one child, prefetch 1): while one worker runs the
    # first copy, the second copy can only go to the other worker.
    env = {"CONVEYOR_TASK_MODULES": "fault_tasks", "CONVEYOR_LEASE_TTL_SECONDS": str(LEASE_TTL)}
    pair = [module_worker_factory(env=env, concurrency=1, wait=False) for _ in range(2)]
    for worker in pair:
        worker.wait_ready()
    return pair


def record_envelope(path: str, seconds: float, attempt: int = 1, job_id=None) -> TaskEnvelope:
    return TaskEnvelope(
        job_id=job_id or uuid.uuid4(),
        tenant_id="acme",
        task="fault.record",
        attempt=attempt,
        args={"path": path, "seconds": seconds},
        timeout_seconds=60,
    )


def wait_types(worker, job_id, expected: list[EventType], eventually) -> list[LifecycleEvent]:
    """Waits until the job's events are `expected` (in any order), then returns them."""
    want = sorted(expected)
    eventually(
        lambda: sorted(e.type for e in worker.events(job_id)) == want,
        30,
        f"events {want} for {job_id} (got {[e.type for e in worker.events(job_id)]})",
    )
    return worker.events(job_id)


def test_two_copies_delivered_at_once_run_the_task_once(workers, notes, eventually):
    first, second = workers
    env = record_envelope(str(notes.path), seconds=2)
    first.publish(env, copies=2)

    events = wait_types(
        first,
        env.job_id,
        [EventType.RECEIVED, EventType.STARTED, EventType.SKIPPED, EventType.SUCCEEDED],
        eventually,
    )
    assert len(notes.starts(env.job_id)) == 1  # the task body ran exactly once
    by_type = {e.type: e for e in events}
    ran, skipped = by_type[EventType.SUCCEEDED], by_type[EventType.SKIPPED]
    assert skipped.error_message == "already-started"
    assert skipped.attempt == ran.attempt == 1
    # Both copies were taken, by different workers, while the first one still ran.
    names = {first.info()["name"], second.info()["name"]}
    assert {ran.worker, skipped.worker} == names
    assert by_type[EventType.STARTED].at < skipped.at < ran.at

    record = first.result(env.job_id)
    assert record["status"] == "SUCCESS"
    assert record["result"]["attempt"] == 1


def test_the_lease_is_held_while_the_attempt_runs(workers, notes):
    worker = workers[0]
    env = record_envelope(str(notes.path), seconds=1.5)
    worker.publish(env)
    worker.wait_events(env.job_id, until={EventType.STARTED})
    job = str(env.job_id)

    attempt, _, runner = worker.client.get(worker.keys.lease(job)).decode().partition(":")
    assert attempt == "1"
    assert runner in {w.info()["name"] for w in workers}
    assert 0 < worker.client.pttl(worker.keys.lease(job)) <= LEASE_TTL * 1000
    assert worker.client.get(worker.keys.fence(job)) == b"1"

    assert worker.final_event(env.job_id).type == EventType.SUCCEEDED
    # Deleted in the same round trip as the final event, so already gone when it is seen.
    assert not worker.client.exists(worker.keys.lease(job))
    assert worker.client.get(worker.keys.fence(job)) == b"1"  # kept: it outlives redeliveries


def test_a_redelivery_after_the_attempt_finished_is_skipped(workers, notes, eventually):
    worker = workers[0]
    env = record_envelope(str(notes.path), seconds=0)
    worker.publish(env)
    assert worker.final_event(env.job_id).type == EventType.SUCCEEDED
    stored = worker.client.get(worker.keys.result(str(env.job_id)))

    worker.publish(env)  # what kombu's restore or a second relay publish would do
    events = wait_types(
        worker,
        env.job_id,
        [EventType.RECEIVED, EventType.STARTED, EventType.SUCCEEDED, EventType.SKIPPED],
        eventually,
    )
    assert events[-1].type == EventType.SKIPPED
    assert events[-1].error_message == "already-started"
    assert len(notes.starts(env.job_id)) == 1
    # The skip stored nothing: the first attempt's result record is untouched.
    assert worker.client.get(worker.keys.result(str(env.job_id))) == stored

    # The next attempt of the same job does run.
    retry = record_envelope(str(notes.path), seconds=0, attempt=2, job_id=env.job_id)
    worker.publish(retry)
    eventually(
        lambda: any(
            e.type == EventType.SUCCEEDED and e.attempt == 2 for e in worker.events(env.job_id)
        ),
        30,
        "attempt 2 succeeded",
    )
    assert [row[2] for row in notes.starts(env.job_id)] == ["1", "2"]
    assert worker.client.get(worker.keys.fence(str(env.job_id))) == b"2"


def test_a_message_for_a_cancelled_job_never_runs(workers, notes):
    worker = workers[1]
    env = record_envelope(str(notes.path), seconds=0)
    # What job-service does on cancel, besides the CANCELLED row in PostgreSQL.
    worker.client.set(worker.keys.cancel(str(env.job_id)), "1", ex=600)
    worker.publish(env)

    events = worker.wait_events(env.job_id, until={EventType.SKIPPED})
    assert [(e.type, e.error_message) for e in events] == [(EventType.SKIPPED, "cancelled")]
    assert notes.starts(env.job_id) == []
    assert not worker.client.exists(worker.keys.result(str(env.job_id)))
    assert not worker.client.exists(worker.keys.fence(str(env.job_id)))
    # Acked, not requeued: the worker goes on to the next job.
    assert worker.final_event(worker.submit("echo", {"after": "skip"})).type == EventType.SUCCEEDED
    assert worker.events(env.job_id) == events  # and never saw the cancelled one again


def test_an_attempt_whose_lease_another_holder_took_stops_and_reports_nothing(workers, notes):
    worker = workers[0]
    env = record_envelope(str(notes.path), seconds=60)
    worker.publish(env)
    worker.wait_events(env.job_id, until={EventType.STARTED})
    job = str(env.job_id)

    # job-service gave attempt 1 up, and attempt 2 started elsewhere (what its acquire writes).
    worker.client.set(worker.keys.fence(job), "2", ex=600)
    worker.client.set(worker.keys.lease(job), "2:elsewhere", ex=600)

    events = worker.wait_events(env.job_id, until={EventType.SKIPPED}, timeout=20)
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.STARTED, EventType.SKIPPED]
    assert events[-1].error_message == "lease-lost"
    assert notes.ends(env.job_id) == []  # stopped
    # Nothing stored, and the holder's lease untouched: the outcome is attempt 2's to report.
    assert not worker.client.exists(worker.keys.result(job))
    assert worker.client.get(worker.keys.lease(job)) == b"2:elsewhere"
