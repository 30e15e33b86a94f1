"""The attempt fence and the lease heartbeat against a real Redis, in this process (the worker
processes' use of them is tested in test_fencing, test_cancel, test_crash and test_shutdown)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.redis_keys import RedisKeys
from conveyor_worker.errors import TaskInterrupted
from conveyor_worker.events import make_event
from conveyor_worker.leases import HeldAttempt, LeaseKeeper, Skipped, release_lease

pytestmark = pytest.mark.integration

LEASE_TTL = 3.0
FENCE_TTL = 600.0


def envelope(job_id: uuid.UUID, attempt: int) -> TaskEnvelope:
    return TaskEnvelope(
        job_id=job_id, tenant_id="acme", task="echo", attempt=attempt, timeout_seconds=5
    )


def started_events(env: TaskEnvelope) -> list[LifecycleEvent]:
    ident = {"job_id": env.job_id, "tenant_id": "acme", "attempt": env.attempt, "task": "echo"}
    return [
        make_event(EventType.RECEIVED, worker="w1", **ident),
        make_event(EventType.STARTED, worker="w1", **ident),
    ]


def keeper_for(client: redis.Redis, namespace: str, *, tick: float = 3600.0) -> LeaseKeeper:
    """A keeper whose heartbeat thread (by default) never fires in a test: rounds are run with
    `beat()`, so what each one does is deterministic."""
    return LeaseKeeper(
        client,
        RedisKeys(namespace),
        lease_ttl_seconds=LEASE_TTL,
        fence_ttl_seconds=FENCE_TTL,
        tick_seconds=tick,
        stream_maxlen=10_000,
    )


def acquire(keeper: LeaseKeeper, env: TaskEnvelope, worker: str = "w1") -> HeldAttempt | Skipped:
    return keeper.acquire(env, worker, started_events(env))


def stream_types(client: redis.Redis, keys: RedisKeys) -> list[EventType]:
    return [
        LifecycleEvent.from_stream_fields(fields).type
        for _id, fields in client.xrange(keys.events_stream)
    ]


def test_an_attempt_is_granted_once_with_its_started_events(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    keys = keeper.keys
    job_id = uuid.uuid4()

    held = acquire(keeper, envelope(job_id, 1))
    assert isinstance(held, HeldAttempt)
    assert redis_client.get(keys.fence(str(job_id))) == b"1"
    assert redis_client.get(keys.lease(str(job_id))) == b"1:w1"
    assert 0 < redis_client.pttl(keys.lease(str(job_id))) <= LEASE_TTL * 1000
    assert 0 < redis_client.ttl(keys.fence(str(job_id))) <= FENCE_TTL
    assert stream_types(redis_client, keys) == [EventType.RECEIVED, EventType.STARTED]

    # The same attempt again (a redelivery), from any worker: skipped, and nothing appended.
    assert acquire(keeper, envelope(job_id, 1), "w2") == Skipped("already-started")
    held.release()
    assert acquire(keeper, envelope(job_id, 1), "w2") == Skipped("already-started")
    assert len(stream_types(redis_client, keys)) == 2

    # The next attempt runs.
    second = acquire(keeper, envelope(job_id, 2), "w2")
    assert isinstance(second, HeldAttempt)
    assert redis_client.get(keys.fence(str(job_id))) == b"2"
    assert redis_client.get(keys.lease(str(job_id))) == b"2:w2"
    # An older attempt arriving late never runs.
    assert acquire(keeper, envelope(job_id, 1)) == Skipped("already-started")
    second.release()


def test_a_cancelled_job_is_never_granted(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    job_id = uuid.uuid4()
    redis_client.set(keeper.keys.cancel(str(job_id)), "1", ex=60)
    assert acquire(keeper, envelope(job_id, 3)) == Skipped("cancelled")
    assert redis_client.exists(keeper.keys.fence(str(job_id)), keeper.keys.lease(str(job_id))) == 0
    assert stream_types(redis_client, keeper.keys) == []


def test_release_deletes_only_its_own_lease(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    lease = keeper.keys.lease
    first, second = uuid.uuid4(), uuid.uuid4()

    held = acquire(keeper, envelope(first, 1))
    assert isinstance(held, HeldAttempt)
    held.release()
    assert not redis_client.exists(lease(str(first)))

    held = acquire(keeper, envelope(second, 1))
    assert isinstance(held, HeldAttempt)
    redis_client.set(lease(str(second)), "2:w9")  # a later attempt holds it now
    held.release()
    assert redis_client.get(lease(str(second))) == b"2:w9"
    assert release_lease(redis_client, keeper.keys, str(second), "1:w1") is False
    assert release_lease(redis_client, keeper.keys, str(second), "2:w9") is True


def test_detach_hands_the_lease_over_once(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    env = envelope(uuid.uuid4(), 1)
    held = acquire(keeper, env)
    assert isinstance(held, HeldAttempt)
    lease = keeper.keys.lease(str(env.job_id))

    assert held.detach() == "1:w1"  # the value the outcome script compares and deletes
    assert keeper.held() == []  # no longer renewed
    assert held.detach() is None  # handed over once
    held.release()  # and nothing else deletes it now
    assert redis_client.get(lease) == b"1:w1"


def test_heartbeat_renews_and_sets_a_vanished_lease_again(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    job = str(uuid.uuid4())
    held = acquire(keeper, envelope(uuid.UUID(job), 4))
    assert isinstance(held, HeldAttempt)
    lease, fence = keeper.keys.lease(job), keeper.keys.fence(job)

    redis_client.pexpire(lease, 200)
    keeper.beat()
    assert redis_client.pttl(lease) > 1000  # renewed to the full TTL

    redis_client.delete(lease, fence)  # as after a Redis restart without persistence
    keeper.beat()
    assert redis_client.get(lease) == b"4:w1"
    assert redis_client.get(fence) == b"4"  # so a redelivered copy is still skipped
    assert acquire(keeper, envelope(uuid.UUID(job), 4), "w2") == Skipped("already-started")
    assert not held.cancelled
    assert not held.lost

    held.release()
    keeper.beat()  # a round after the release sets nothing again
    assert not redis_client.exists(lease)


def test_the_heartbeat_thread_keeps_a_long_attempt_leased(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace, tick=LEASE_TTL / 3)
    job = str(uuid.uuid4())
    held = acquire(keeper, envelope(uuid.UUID(job), 1))
    assert isinstance(held, HeldAttempt)
    try:
        time.sleep(LEASE_TTL * 1.5)  # past the TTL it was set with
        assert redis_client.get(keeper.keys.lease(job)) == b"1:w1"
    finally:
        held.release()
        keeper.stop()


def run_in_region(held: HeldAttempt) -> tuple[threading.Thread, list[str]]:
    """A task in a thread (the threads pool's case), busy until interrupted."""
    outcome: list[str] = []
    entered = threading.Event()

    def task() -> None:
        try:
            with held.interruptible:
                entered.set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    time.sleep(0.01)
            outcome.append("finished")
        except TaskInterrupted:
            outcome.append("interrupted")

    thread = threading.Thread(target=task, daemon=True)
    thread.start()
    assert entered.wait(10)
    return thread, outcome


def test_a_cancel_stops_the_running_task(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    job = str(uuid.uuid4())
    held = acquire(keeper, envelope(uuid.UUID(job), 1))
    assert isinstance(held, HeldAttempt)
    other = acquire(keeper, envelope(uuid.uuid4(), 1))  # renewed in the same round
    assert isinstance(other, HeldAttempt)
    thread, outcome = run_in_region(held)

    keeper.beat()
    assert not held.cancelled
    redis_client.set(keeper.keys.cancel(job), "1", ex=60)
    keeper.beat()
    thread.join(10)
    assert held.cancelled
    assert outcome == ["interrupted"]
    assert not other.cancelled
    assert redis_client.get(keeper.keys.lease(other.job_id)) == b"1:w1"
    held.release()
    other.release()


def test_losing_the_lease_to_a_later_attempt_stops_the_task(redis_client, redis_namespace):
    keeper = keeper_for(redis_client, redis_namespace)
    job_id = uuid.uuid4()
    held = acquire(keeper, envelope(job_id, 1))
    assert isinstance(held, HeldAttempt)
    thread, outcome = run_in_region(held)

    # job-service gave up on attempt 1 (its lease had expired) and attempt 2 started elsewhere.
    later = keeper_for(redis_client, keeper.keys.namespace)
    redis_client.delete(keeper.keys.lease(str(job_id)))
    assert isinstance(acquire(later, envelope(job_id, 2), "w2"), HeldAttempt)
    keeper.beat()
    thread.join(10)
    assert held.lost
    assert outcome == ["interrupted"]
    # Attempt 1 neither took the lease back nor lowered the fence.
    assert redis_client.get(keeper.keys.lease(str(job_id))) == b"2:w2"
    assert redis_client.get(keeper.keys.fence(str(job_id))) == b"2"


def test_leases_survive_a_redis_restart(own_redis_server, redis_namespace):
    server = own_redis_server()
    client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    keeper = keeper_for(client, redis_namespace, tick=0.2)
    job = str(uuid.uuid4())
    held = acquire(keeper, envelope(uuid.UUID(job), 2))
    assert isinstance(held, HeldAttempt)
    try:
        server.restart()  # empty: no persistence
        probe = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 20
        while probe.get(keeper.keys.lease(job)) != b"2:w1":
            assert time.monotonic() < deadline, "the heartbeat did not set the lease again"
            time.sleep(0.1)
        assert probe.get(keeper.keys.fence(job)) == b"2"
        probe.close()
    finally:
        held.release()
        keeper.stop()
        client.close()
