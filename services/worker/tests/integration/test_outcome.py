"""The outcome script against a real Redis: the result record (as Celery's backend writes it),
the final events and the lease release in one call (the worker processes' use of it is tested
in test_worker, test_fencing and test_cancel)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
import redis
from celery.app.task import Context

from conveyor_common.celery_app import create_celery_app
from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.results import StoredResult, TaskFailure
from conveyor_worker.events import make_event
from conveyor_worker.leases import HeldAttempt, LeaseKeeper
from conveyor_worker.outcome import OutcomeWriter, failure_record, success_record

pytestmark = pytest.mark.integration

RESULT_TTL = 600


def writer_for(client: redis.Redis, namespace: str) -> OutcomeWriter:
    return OutcomeWriter(
        client, RedisKeys(namespace), result_ttl_seconds=RESULT_TTL, stream_maxlen=10_000
    )


def final(job_id: uuid.UUID, type_: EventType = EventType.SUCCEEDED) -> LifecycleEvent:
    return make_event(type_, job_id=job_id, tenant_id="acme", attempt=1, task="echo", worker="w1")


def held_attempt(client: redis.Redis, namespace: str, job_id: uuid.UUID) -> HeldAttempt:
    keeper = LeaseKeeper(
        client,
        RedisKeys(namespace),
        lease_ttl_seconds=30,
        fence_ttl_seconds=600,
        tick_seconds=3600,
        stream_maxlen=10_000,
    )
    env = TaskEnvelope(job_id=job_id, tenant_id="acme", task="echo", attempt=1, timeout_seconds=5)
    held = keeper.acquire(env, "w1", [])
    assert isinstance(held, HeldAttempt)
    return held


def stream(client: redis.Redis, keys: RedisKeys) -> list[LifecycleEvent]:
    return [LifecycleEvent.from_stream_fields(f) for _id, f in client.xrange(keys.events_stream)]


def success(job_id: uuid.UUID, value: object = "v") -> str:
    return success_record(
        str(job_id), StoredResult(tenant_id="acme", attempt=1, value=value).model_dump()
    )


def failure(job_id: uuid.UUID, error_type: str = "ValueError") -> str:
    exception = {
        "exc_type": "TaskFailure",
        "exc_message": ["acme", error_type, "boom"],
        "exc_module": "conveyor_common.results",
    }
    return failure_record(str(job_id), exception, None)


def test_result_events_and_lease_release_in_one_call(redis_client, redis_namespace):
    writer = writer_for(redis_client, redis_namespace)
    keys = writer.keys
    job_id = uuid.uuid4()
    held = held_attempt(redis_client, redis_namespace, job_id)
    record = success(job_id, {"n": 1})

    assert writer.write(str(job_id), record, [final(job_id)], held)

    assert redis_client.get(keys.result(str(job_id))) == record.encode()
    assert 0 < redis_client.pttl(keys.result(str(job_id))) <= RESULT_TTL * 1000
    assert [e.type for e in stream(redis_client, keys)] == [EventType.SUCCEEDED]
    assert not redis_client.exists(keys.lease(str(job_id)))
    assert held.detach() is None  # released: nothing left to hand over


def test_a_stored_success_is_never_overwritten_but_a_failure_is(redis_client, redis_namespace):
    writer = writer_for(redis_client, redis_namespace)
    result = writer.keys.result
    first, second = uuid.uuid4(), uuid.uuid4()

    writer.write(str(first), success(first), [final(first)], None)
    writer.write(str(first), failure(first), [final(first, EventType.FAILED)], None)
    assert json.loads(redis_client.get(result(str(first))))["status"] == "SUCCESS"
    # The late copy's event still goes out: job-service's fencing decides what it means.
    assert [e.type for e in stream(redis_client, writer.keys)][-1] == EventType.FAILED

    writer.write(str(second), failure(second), [], None)
    writer.write(str(second), success(second), [], None)
    assert json.loads(redis_client.get(result(str(second))))["status"] == "SUCCESS"


def test_another_attempts_lease_is_left_alone(redis_client, redis_namespace):
    writer = writer_for(redis_client, redis_namespace)
    job_id = uuid.uuid4()
    held = held_attempt(redis_client, redis_namespace, job_id)
    lease = writer.keys.lease(str(job_id))
    redis_client.set(lease, "2:w9")  # a later attempt holds it now

    writer.write(str(job_id), failure(job_id), [final(job_id, EventType.FAILED)], held)
    assert redis_client.get(lease) == b"2:w9"
    assert json.loads(redis_client.get(writer.keys.result(str(job_id))))["status"] == "FAILURE"


def test_records_are_the_ones_celerys_backend_writes(redis_backend, redis_client, redis_namespace):
    """The result-service and the reconciler read these keys as Celery records."""
    app = create_celery_app(
        "t", broker_url=redis_backend.url, namespace=redis_namespace, result_ttl_seconds=RESULT_TTL
    )
    writer = writer_for(redis_client, redis_namespace)
    ok_id, failed_id, ours_ok, ours_failed = (str(uuid.uuid4()) for _ in range(4))
    value = StoredResult(tenant_id="acme", attempt=2, value={"a": [1, None]}).model_dump()
    exc = TaskFailure("acme", "ValueError", "boom")
    try:
        # As a worker's task request has them: no children.
        app.backend.mark_as_done(ok_id, value, request=Context(children=[]))
        app.backend.mark_as_failure(
            failed_id, exc, traceback="Traceback ...", request=Context(children=[])
        )
        prepared = app.backend.prepare_exception(exc)
    finally:
        app.close()
    writer.write(ours_ok, success_record(ours_ok, value), [], None)
    writer.write(ours_failed, failure_record(ours_failed, prepared, "Traceback ..."), [], None)

    def read(task_id: str) -> dict[str, object]:
        record: dict[str, object] = json.loads(redis_client.get(writer.keys.result(task_id)))
        assert datetime.fromisoformat(str(record.pop("date_done"))).utcoffset() is not None
        assert record.pop("task_id") == task_id
        return record

    celery_ok, celery_failed = read(ok_id), read(failed_id)
    assert read(ours_ok) == celery_ok
    assert read(ours_failed) == celery_failed
    assert celery_failed["result"] == {
        "exc_type": "TaskFailure",
        "exc_message": ["acme", "ValueError", "boom"],
        "exc_module": "conveyor_common.results",
    }
    ttl = redis_client.ttl
    assert 0 < ttl(writer.keys.result(ours_ok)) <= RESULT_TTL
    assert abs(ttl(writer.keys.result(ours_ok)) - ttl(writer.keys.result(ok_id))) <= 2


def test_an_unreachable_redis_is_logged_not_raised(redis_client, redis_namespace):
    job_id = uuid.uuid4()
    held = held_attempt(redis_client, redis_namespace, job_id)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    writer = OutcomeWriter(
        dead,
        RedisKeys(redis_namespace),
        result_ttl_seconds=RESULT_TTL,
        stream_maxlen=10_000,
        retry_pauses=(0.0,),
    )
    assert writer.write(str(job_id), success(job_id), [final(job_id)], held) is False
    # Not renewed any more: the lease expires and job-service's reconciler settles the attempt.
    assert held.detach() is None
    assert redis_client.exists(writer.keys.lease(str(job_id)))
