"""The relay's pre-built messages against the real thing.

job-service LPUSHes messages from `build_task_message` instead of calling `send_task`, which
skips kombu's routing and publish path; these tests keep the two identical where it matters and
prove a real worker consumes what the relay writes.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor_common.celery_app import create_celery_app
from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.messages import build_task_message, queue_key
from conveyor_common.redis_keys import RedisKeys
from conveyor_testing.ports import free_port
from conveyor_testing.processes import ManagedProcess, python_module

pytestmark = pytest.mark.integration

# Fields that differ on purpose between a `send_task` message and a pre-built one.
EXPECTED_DIFFERENCES = {
    # Random per message in both; kombu's Redis transport uses it only to ack.
    "properties.delivery_tag": "a fresh uuid4 per message",
    # The app's reply-queue oid (for result backends that reply over AMQP); the Redis result
    # backend writes a key and never reads it.
    "properties.reply_to": "an id of the publishing app",
    # Who published it, for Celery's logs: `<pid>@<host>` vs `conveyor-relay@<host>`.
    "headers.origin": "the publisher's name",
    # Celery logs these reprs; the relay never puts arguments (which may hold secrets) in them.
    "headers.kwargsrepr": "a repr of the arguments",
}


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict) and item:
            out.update(flatten(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def make_envelope(task: str = "echo", queue: str = "default") -> TaskEnvelope:
    return TaskEnvelope(
        job_id=uuid.uuid4(),
        tenant_id="acme",
        task=task,
        attempt=2,
        args={"text": "héllo", "nested": [1, {"b": None}], "n": 1.5},
        queue=queue,
        timeout_seconds=30,
        idempotency_key="idem-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


@pytest.fixture
def producer(redis_url: str, redis_namespace: str) -> Iterator[Any]:
    app = create_celery_app("producer", broker_url=redis_url, namespace=redis_namespace)
    yield app
    app.close()


def send(app: Any, envelope: TaskEnvelope, *, priority: int | None = None) -> None:
    app.send_task(
        envelope.task,
        kwargs={"job": envelope.model_dump(mode="json")},
        task_id=str(envelope.job_id),
        queue=envelope.queue,
        soft_time_limit=20,
        time_limit=30,
        priority=priority,
    )


def test_prebuilt_message_matches_send_task_field_by_field(producer, redis_client, redis_namespace):
    envelope = make_envelope(queue="images")
    send(producer, envelope)
    keys = RedisKeys(redis_namespace)
    raw = redis_client.rpop(keys.queue(queue_key("images")))
    assert raw is not None, "send_task did not write where queue_key() says"
    real = json.loads(raw)
    built = json.loads(build_task_message(envelope, soft_time_limit=20, time_limit=30))

    # The body (arguments) is byte for byte the same.
    assert base64.b64decode(built["body"]) == base64.b64decode(real["body"])
    real_fields, built_fields = flatten(real), flatten(built)
    assert real_fields.keys() == built_fields.keys()
    differing = {k for k in real_fields if real_fields[k] != built_fields[k]}
    assert differing == set(EXPECTED_DIFFERENCES)
    # Even where they differ, the shapes agree.
    assert uuid.UUID(built_fields["properties.delivery_tag"])
    assert built_fields["headers.kwargsrepr"] == "{'job': '<envelope>'}"


def test_priority_lands_in_the_list_queue_key_names(producer, redis_client, redis_namespace):
    keys = RedisKeys(redis_namespace)
    for priority in (0, 4, 9):
        send(producer, make_envelope(queue="prio"), priority=priority)
        assert redis_client.llen(keys.queue(queue_key("prio", priority))) == 1, priority
        redis_client.delete(keys.queue(queue_key("prio", priority)))


@pytest.fixture
def worker(redis_url: str, redis_namespace: str, process_log_dir: Path) -> Iterator[ManagedProcess]:
    port = free_port()
    env = {
        "CONVEYOR_REDIS_URL": redis_url,
        "CONVEYOR_REDIS_NAMESPACE": redis_namespace,
        "CONVEYOR_ENVIRONMENT": "development",
        "CONVEYOR_WORKER_HEALTH_PORT": str(port),
        "CONVEYOR_WORKER_CONCURRENCY": "1",
        "CONVEYOR_WORKER_POOL": "prefork",
        "CONVEYOR_WORKER_QUEUES": "default",
        "CONVEYOR_TASK_MODULES": "",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    process = ManagedProcess("worker", python_module("conveyor_worker"), env=env,
                             log_dir=process_log_dir).start()  # fmt: skip
    try:
        process.wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60)
        yield process
    finally:
        process.terminate(timeout=20)
        process.kill()


def wait_final(
    client: redis.Redis, keys: RedisKeys, job_id: uuid.UUID, worker: ManagedProcess
) -> LifecycleEvent:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for _id, fields in client.xrange(keys.events_stream):
            event = LifecycleEvent.from_stream_fields(fields)
            if event.job_id == job_id and event.type in (EventType.SUCCEEDED, EventType.FAILED):
                return event
        time.sleep(0.05)
    raise AssertionError(f"no final event for {job_id}\n{worker.tail()}")


def test_a_real_worker_consumes_prebuilt_and_sent_messages(
    worker, producer, redis_client, redis_namespace
):
    keys = RedisKeys(redis_namespace)
    prebuilt, sent = make_envelope(), make_envelope()
    redis_client.lpush(
        keys.queue(queue_key("default")),
        build_task_message(prebuilt, soft_time_limit=20, time_limit=30),
    )
    send(producer, sent)
    for envelope in (prebuilt, sent):
        event = wait_final(redis_client, keys, envelope.job_id, worker)
        assert (event.type, event.attempt, event.tenant_id) == (EventType.SUCCEEDED, 2, "acme")
        record = json.loads(redis_client.get(keys.result(str(envelope.job_id))))
        assert record["status"] == "SUCCESS"
        assert record["result"] == {"tenant_id": "acme", "attempt": 2, "value": envelope.args}
    assert redis_client.llen(keys.queue(queue_key("default"))) == 0
