"""Telling the rest of Conveyor what this worker runs: the task catalog (a hash every worker
writes, job-service reads to validate submissions) and a per-worker key with a TTL, renewed by
a heartbeat thread while the worker consumes, which job-service counts as `conveyor_workers`."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import redis
import structlog

from conveyor_common.redis_keys import RedisKeys
from conveyor_worker.registry import TaskRegistry

log = structlog.get_logger("conveyor.worker")


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    name: str
    queues: list[str]
    concurrency: int
    pool: str
    tasks: list[str]
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def catalog_mapping(registry: TaskRegistry) -> dict[str, str]:
    return {task.name: task.descriptor().model_dump_json() for task in registry}


class Advertiser:
    """Writes the catalog and this worker's key; `start()` keeps them fresh in a daemon thread
    (so a Redis that lost its data gets them back within one interval).

    The worker key is there only while `is_ready()` (the consumer is consuming): a worker that
    has stopped taking tasks but still reaches Redis drops out of `conveyor_workers`, so the
    "no ready workers" alert counts the workers that can do work, not the processes alive."""

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        registry: TaskRegistry,
        info: WorkerInfo,
        *,
        interval_seconds: float = 10.0,
        ttl_seconds: int = 30,
        is_ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.is_ready = is_ready
        self.keys = keys
        self.info = info
        self.catalog = catalog_mapping(registry)
        self.interval = interval_seconds
        self.ttl = ttl_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def worker_key(self) -> str:
        return self.keys.worker(self.info.name)

    def advertise(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        if self.catalog:
            pipe.hset(self.keys.catalog, mapping=self.catalog)  # type: ignore[arg-type]
        if self.is_ready():
            pipe.set(self.worker_key, self.info.to_json(), ex=self.ttl)
        else:
            pipe.delete(self.worker_key)
        pipe.execute()

    def start(self) -> None:
        try:
            self.advertise()
            log.info("worker.advertised", worker=self.info.name, tasks=len(self.catalog))
        except redis.RedisError as exc:
            # Not fatal: the heartbeat tries again every interval.
            log.warning("worker.advertise_failed", error=str(exc))
        self._thread = threading.Thread(target=self._run, name="conveyor-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.advertise()
            except redis.RedisError as exc:
                # The key expires if this keeps failing, which is the truth: we are cut off.
                log.warning("worker.heartbeat_failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.client.delete(self.worker_key)
        except redis.RedisError as exc:
            log.warning("worker.unregister_failed", error=str(exc))
