"""The worker key (what `conveyor_workers` counts) is kept only while the consumer consumes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

from conveyor_common.redis_keys import RedisKeys
from conveyor_worker.advertise import Advertiser, WorkerInfo
from conveyor_worker.registry import TaskRegistry


def _eventually(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_worker_that_stops_consuming_drops_out_and_comes_back(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    keys = RedisKeys(redis_namespace)
    consuming = threading.Event()
    consuming.set()
    info = WorkerInfo(name="w-adv", queues=["default"], concurrency=1, pool="solo", tasks=[])
    advertiser = Advertiser(
        redis_client, keys, TaskRegistry(), info,
        interval_seconds=0.05, ttl_seconds=30, is_ready=consuming.is_set,
    )  # fmt: skip
    key = keys.worker("w-adv")
    advertiser.start()
    try:
        assert redis_client.exists(key)
        consuming.clear()  # the consumer stopped; Redis still answers
        assert _eventually(lambda: not redis_client.exists(key))
        consuming.set()
        assert _eventually(lambda: redis_client.exists(key))
    finally:
        advertiser.stop()
    assert not redis_client.exists(key)
