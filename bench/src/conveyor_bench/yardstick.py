"""Bare Celery on the same Redis, with the same pool, concurrency and settings as Conveyor's
worker: a `send_task` loop while the worker drains (until every result is stored), then a
steady rate with the start time of each task."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from conveyor_bench import sockets
from conveyor_bench.bare_tasks import NOOP, QUEUE, STAMP
from conveyor_bench.processes import (
    CpuMeter,
    start_logged_process,
    stop_process,
    tree_pids,
    tree_usage,
)
from conveyor_bench.stats import latency_summary, rate
from conveyor_common.celery_app import create_celery_app
from conveyor_common.redis_keys import CELERY_RESULT_PREFIX, RedisKeys

IGNORED_COMMANDS = frozenset({"info", "config|resetstat", "scan", "llen", "ping", "mget", "dbsize"})


@dataclass(frozen=True)
class BareSettings:
    redis_url: str
    redis_port: int
    redis_pid: int | None
    concurrency: int
    pool: str
    log_level: str
    log_dir: Path
    namespace: str = "bare"


def _commandstats(client: redis.Redis) -> dict[str, int]:
    info: dict[str, Any] = client.info("commandstats")
    return {
        str(k).removeprefix("cmdstat_"): int(v.get("calls", 0))
        for k, v in info.items()
        if isinstance(v, dict)
    }


def _result_keys(client: redis.Redis, keys: RedisKeys) -> list[bytes]:
    pattern = f"{keys.celery_prefix}{CELERY_RESULT_PREFIX}*"
    return list(client.scan_iter(match=pattern, count=5000))


class BareCelery:
    """A bare Celery worker process and a producer app, for the life of a `with` block."""

    def __init__(self, settings: BareSettings) -> None:
        self.settings = settings
        self.keys = RedisKeys(settings.namespace)
        env = {
            **os.environ,
            "BENCH_BARE_REDIS_URL": settings.redis_url,
            "BENCH_BARE_NAMESPACE": settings.namespace,
        }
        argv = [
            sys.executable, "-m", "celery", "-A", "conveyor_bench.bare_tasks:app", "worker",
            "-Q", QUEUE, "-P", settings.pool, "-c", str(settings.concurrency),
            "-l", settings.log_level, "--without-gossip", "--without-mingle",
            "--without-heartbeat", "-n", f"bare-{settings.namespace}@%h",
        ]  # fmt: skip
        self.worker = start_logged_process(
            argv, env=env, log_path=settings.log_dir / "bare-celery-worker.log"
        )
        self.client = redis.Redis.from_url(settings.redis_url)
        self.app = create_celery_app(
            "bare-producer", broker_url=settings.redis_url, namespace=settings.namespace
        )

    def __enter__(self) -> BareCelery:
        try:
            self._wait_consuming()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        stop_process(self.worker)
        self._delete_keys()
        self.app.close()
        self.client.close()

    def _delete_keys(self, pattern: str | None = None) -> None:
        pattern = pattern or f"{self.keys.celery_prefix}*"
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    def _wait_consuming(self, timeout: float = 60) -> None:
        """Consuming once kombu has bound its queue; then a moment for the pool to BRPOP."""
        deadline = time.monotonic() + timeout
        binding = f"{self.keys.celery_prefix}_kombu.binding.{QUEUE}"
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError("the bare Celery worker exited; see bare-celery-worker.log")
            if self.client.exists(binding):
                time.sleep(1.0)
                return
            time.sleep(0.1)
        raise TimeoutError("the bare Celery worker did not start consuming")

    def _wait_results(self, count: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.llen(self.keys.queue(QUEUE)) == 0:
                if len(_result_keys(self.client, self.keys)) >= count:
                    return time.perf_counter()
                time.sleep(0.02)
            else:
                time.sleep(0.05)
        raise TimeoutError(f"bare Celery did not store {count} results within {timeout}s")

    # -- scenarios --------------------------------------------------------------------------

    def drain(self, jobs: int) -> dict[str, Any]:
        """`send_task` in a loop while the worker drains; done when every result is stored."""
        worker_pids = tree_pids(self.worker.pid)
        meter = CpuMeter({"worker": self.worker.pid, **self._redis_pid()})
        segments_before = sockets.snapshot({"worker": worker_pids}, self.settings.redis_port)
        commands_before = _commandstats(self.client)
        cpu_before = meter.snapshot()
        send_latencies: list[float] = []
        start = time.perf_counter()
        for _ in range(jobs):
            sent = time.perf_counter()
            self.app.send_task(NOOP, queue=QUEUE)
            send_latencies.append(time.perf_counter() - sent)
        enqueued = time.perf_counter()
        drained = self._wait_results(jobs, timeout=max(120.0, jobs / 20))
        cpu = CpuMeter.delta(cpu_before, meter.snapshot())
        commands = {
            k: v
            for k, v in _diff(commands_before, _commandstats(self.client)).items()
            if k not in IGNORED_COMMANDS
        }
        trips = sockets.deltas(
            segments_before,
            sockets.snapshot({"worker": tree_pids(self.worker.pid)}, self.settings.redis_port),
        )
        cpu["producer"] = cpu.pop("bench")
        # The steady run that follows counts its own results.
        self._delete_keys(f"{self.keys.celery_prefix}{CELERY_RESULT_PREFIX}*")
        return {
            "jobs": jobs,
            "enqueue_per_second": rate(jobs, enqueued - start),
            "drain_per_second": rate(jobs, drained - start),
            "drain_seconds": round(drained - start, 3),
            "send_latency": latency_summary(send_latencies),
            "cpu_ms_per_job": {k: round(v * 1000 / jobs, 3) for k, v in cpu.items() if k != "wall"},
            "redis_commands_per_job": round(sum(commands.values()) / jobs, 2),
            "redis_commands": {k: round(v / jobs, 3) for k, v in commands.items()},
            "redis_round_trips_per_job": {k: round(v / jobs, 3) for k, v in trips.items()},
            "worker_rss_bytes": tree_usage(self.worker.pid).rss_bytes,
        }

    def steady(self, per_second: float, seconds: float) -> dict[str, Any]:
        """`send_task` at a fixed rate; submit→started from the task's own start time."""
        sent_at: dict[str, float] = {}
        total = int(per_second * seconds)
        start = time.perf_counter()
        for number in range(total):
            delay = start + number / per_second - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            result = self.app.send_task(STAMP, queue=QUEUE)
            sent_at[result.id] = now
        self._wait_results(len(sent_at), timeout=60)
        started: list[float] = []
        ids = list(sent_at)
        for offset in range(0, len(ids), 1000):
            chunk = ids[offset : offset + 1000]
            raws = self.client.mget(
                [f"{self.keys.celery_prefix}{CELERY_RESULT_PREFIX}{i}" for i in chunk]
            )
            for job_id, raw in zip(chunk, raws, strict=True):
                if raw is None:
                    continue
                meta = json.loads(raw)
                if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), float):
                    started.append(meta["result"] - sent_at[job_id])
        return {
            "rate_per_second": per_second,
            "seconds": seconds,
            "jobs": total,
            "submit_to_started": latency_summary(started),
        }

    def _redis_pid(self) -> dict[str, int]:
        pid = self.settings.redis_pid
        return {"redis": pid} if pid else {}


def _diff(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
