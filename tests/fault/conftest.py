"""Fault tests: real processes on loopback, with short leases and reconciler periods so each
case ends in well under a minute. A test that stops or restarts Redis or PostgreSQL starts its
own server for it (`own_redis_server`, `own_postgres_server`), never the machine's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from conveyor_devstack.stack import Stack

FAULT_DIR = Path(__file__).resolve().parent

FAST_SETTINGS = {
    "CONVEYOR_LEASE_TTL_SECONDS": "3",
    "CONVEYOR_RECONCILE_INTERVAL_SECONDS": "1",
    "CONVEYOR_QUEUED_REPUBLISH_SECONDS": "5",
    "CONVEYOR_EVENTS_CLAIM_IDLE_MS": "2000",
    "CONVEYOR_EVENTS_CLAIM_INTERVAL_SECONDS": "1",
    "CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "CONVEYOR_RELAY_SWEEP_SECONDS": "0.5",
    "CONVEYOR_TASK_MODULES": "fault_tasks",
}


@pytest.fixture
def probe_prefix() -> str:
    return f"probe{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fault_stack(
    stack_factory: Callable[..., Stack], redis_backend: Any, probe_prefix: str
) -> Callable[..., Stack]:
    """`stack_factory` with the fast settings and the misbehaving tasks loaded."""

    def make(*, probe_redis_url: str | None = None, **config: Any) -> Stack:
        extra = {
            **FAST_SETTINGS,
            "PYTHONPATH": str(FAULT_DIR),
            "FAULT_PROBE_REDIS_URL": probe_redis_url or redis_backend.url,
            "FAULT_PROBE_PREFIX": probe_prefix,
            **config.pop("extra_env", {}),
        }
        config.setdefault("workers", 1)
        config.setdefault("worker_concurrency", 2)
        return stack_factory(extra_env=extra, **config)

    return make


@pytest.fixture
def probe(
    redis_backend: Any, probe_prefix: str
) -> Iterator[Callable[[str], list[tuple[str, int, float]]]]:
    """Reads what the fault tasks recorded for one job: [(start|end, attempt, time), ...]."""
    client = redis.Redis.from_url(redis_backend.url)

    def read(job_id: str) -> list[tuple[str, int, float]]:
        entries = client.lrange(f"{probe_prefix}:{job_id}", 0, -1)
        out = []
        for raw in entries:
            what, attempt, at = raw.decode().split(":")
            out.append((what, int(attempt), float(at)))
        return out

    yield read
    for key in client.scan_iter(match=f"{probe_prefix}:*"):
        client.delete(key)
    client.close()


def api(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
    )
