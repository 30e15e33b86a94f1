"""The Redis event sink against a real Redis: one pipeline per append, entries job-service can
parse, and a stream that stays bounded."""

from __future__ import annotations

import uuid

import pytest

from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.redis_keys import RedisKeys
from conveyor_worker.events import RedisEventSink, make_event

pytestmark = pytest.mark.integration


def event(type_: EventType, job_id: uuid.UUID) -> LifecycleEvent:
    return make_event(type_, job_id=job_id, tenant_id="acme", attempt=1, task="echo", worker="w")


def test_events_round_trip_in_order(redis_client, redis_namespace):
    keys = RedisKeys(redis_namespace)
    sink = RedisEventSink(redis_client, keys)
    job_id = uuid.uuid4()
    sink.append(event(EventType.RECEIVED, job_id), event(EventType.STARTED, job_id))
    sink.append(event(EventType.SUCCEEDED, job_id))
    sink.append()  # nothing to write is not an error
    entries = redis_client.xrange(keys.events_stream)
    parsed = [LifecycleEvent.from_stream_fields(fields) for _id, fields in entries]
    assert [e.type for e in parsed] == [EventType.RECEIVED, EventType.STARTED, EventType.SUCCEEDED]
    assert {e.job_id for e in parsed} == {job_id}


def test_stream_is_trimmed_near_its_bound(redis_client, redis_namespace):
    keys = RedisKeys(redis_namespace)
    sink = RedisEventSink(redis_client, keys, maxlen=100)
    job_id = uuid.uuid4()
    for _ in range(30):
        sink.append(*(event(EventType.STARTED, job_id) for _ in range(50)))
    length = redis_client.xlen(keys.events_stream)
    # `MAXLEN ~` trims whole radix-tree nodes (100 entries each by default), never below the bound.
    assert 100 <= length <= 300
