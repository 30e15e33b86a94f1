"""Conveyor under test: the whole stack (`conveyor_devstack.stack.Stack`) on the bench's
PostgreSQL and Redis, and a meter of everything one job costs it."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from conveyor_bench import sockets
from conveyor_bench.backends import Backends
from conveyor_bench.counters import (
    PgCounters,
    PgProbe,
    pg_delta,
    redis_commandstats,
    redis_delta,
)
from conveyor_bench.processes import CpuMeter, CpuSnapshot, tree_pids
from conveyor_common.redis_keys import RedisKeys
from conveyor_devstack.output import LogFiles
from conveyor_devstack.stack import GATEWAY, JOB_SERVICE, RESULT_SERVICE, Stack, StackConfig
from conveyor_testing.databases import asyncpg_url

NAMESPACE = "bench"
TENANT = "bench"
# Commands the bench itself sends to Redis (counters, soak samples), left out of the figures.
BENCH_COMMANDS = frozenset({"info", "config|resetstat", "xlen", "llen", "dbsize", "ping"})
UNFINISHED = ("SCHEDULED", "WAITING", "PENDING", "QUEUED", "RUNNING", "RETRYING")


@dataclass(frozen=True)
class StackSettings:
    workers: int
    concurrency: int
    pool: str
    log_level: str
    log_dir: Path
    overrides: Mapping[str, str]  # CONVEYOR_* settings changed for this run


OVERRIDE_PREFIX = "BENCH_CONVEYOR_"


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`BENCH_CONVEYOR_X=v` in the bench's environment is `CONVEYOR_X=v` for every process of
    the stack: A/B runs of a setting (the stack passes no `CONVEYOR_*` variable through as it
    is, so a developer's own settings never leak into a measurement unasked)."""
    return {
        "CONVEYOR_" + name.removeprefix(OVERRIDE_PREFIX): value
        for name, value in environ.items()
        if name.startswith(OVERRIDE_PREFIX) and name != OVERRIDE_PREFIX
    }


def start_stack(backends: Backends, settings: StackSettings) -> Stack:
    config = StackConfig.on_free_ports(
        database_url=asyncpg_url(backends.database_url),
        redis_url=backends.redis_url,
        workers=settings.workers,
        redis_namespace=NAMESPACE,
        worker_concurrency=settings.concurrency,
        worker_pool=settings.pool,
        internal_token=secrets.token_urlsafe(24),
        environment="production",
        extra_env={
            "CONVEYOR_LOG_LEVEL": settings.log_level,
            # The limiter stays on (its Redis round trip is part of every request's cost) but
            # high enough never to refuse the bench.
            "CONVEYOR_RATE_LIMIT": "1000000/second",
            **settings.overrides,
        },
    )
    return Stack(config, LogFiles(settings.log_dir)).start(timeout=180)


@dataclass(frozen=True)
class Snapshot:
    cpu: CpuSnapshot
    pg: PgCounters
    redis_commands: dict[str, int]
    pg_segments: dict[str, sockets.SocketCounts]
    redis_segments: dict[str, sockets.SocketCounts]


class Meter:
    """CPU of every process, PostgreSQL statements, transactions and round trips, Redis
    commands and round trips, between two snapshots."""

    def __init__(self, stack: Stack, backends: Backends, probe: PgProbe, redis: aioredis.Redis):
        self.stack = stack
        self.backends = backends
        self.probe = probe
        self.redis = redis

    def pids(self) -> dict[str, int]:
        found = {name: child.pid for name, child in self.stack.processes.items() if child.alive()}
        if self.backends.redis_pid:
            found["redis"] = self.backends.redis_pid
        if self.backends.postgres_pid:
            found["postgres"] = self.backends.postgres_pid
        return found

    def _clients(self) -> dict[str, list[int]]:
        return {
            name: tree_pids(pid)
            for name, pid in self.pids().items()
            if name not in ("redis", "postgres")
        }

    async def snapshot(self) -> Snapshot:
        clients = self._clients()
        pg_segments = await asyncio.to_thread(
            sockets.snapshot,
            {JOB_SERVICE: clients.get(JOB_SERVICE, [])},
            self.backends.postgres_port,
        )
        redis_segments = await asyncio.to_thread(
            sockets.snapshot, clients, self.backends.redis_port
        )
        return Snapshot(
            cpu=CpuMeter(self.pids()).snapshot(),
            pg=await self.probe.counters(),
            redis_commands=await redis_commandstats(self.redis),
            pg_segments=pg_segments,
            redis_segments=redis_segments,
        )

    async def cost(self, before: Snapshot, jobs: int) -> dict[str, Any]:
        """What the `jobs` done since `before` cost, per job (CPU per 1,000 jobs)."""
        after = await self.snapshot()
        cpu = CpuMeter.delta(before.cpu, after.cpu)
        wall = cpu.pop("wall")
        pg = pg_delta(before.pg, after.pg)
        commands = {
            k: v
            for k, v in redis_delta(before.redis_commands, after.redis_commands).items()
            if k not in BENCH_COMMANDS
        }
        pg_trips = sockets.deltas(before.pg_segments, after.pg_segments)
        redis_trips = sockets.deltas(before.redis_segments, after.redis_segments)
        n = max(jobs, 1)
        return {
            "jobs": jobs,
            "seconds": round(wall, 2),
            "cpu_seconds_per_1000_jobs": {k: round(v * 1000 / n, 3) for k, v in cpu.items()},
            "cores_used": {k: round(v / wall, 2) for k, v in cpu.items()} if wall else {},
            "pg_round_trips_per_job": round(sum(pg_trips.values()) / n, 4),
            "pg_statements_per_job": None if pg.statements is None else round(pg.statements / n, 4),
            "pg_transactions_per_job": round(pg.transactions / n, 4),
            # Connections opened meanwhile: a pool that opens and closes connections under load
            # (overflow) pays a connect each time, and its round trips escape the count above.
            "pg_connections_opened": pg.sessions,
            "pg_rows_per_job": {
                "inserted": round(pg.rows_inserted / n, 3),
                "updated": round(pg.rows_updated / n, 3),
                "deleted": round(pg.rows_deleted / n, 3),
            },
            "pg_top_statements": pg.top_statements,
            "redis_commands_per_job": round(sum(commands.values()) / n, 3),
            "redis_commands": {k: round(v / n, 3) for k, v in list(commands.items())[:15]},
            "redis_round_trips_per_job": {k: round(v / n, 3) for k, v in redis_trips.items()},
        }


class Observer:
    """The bench's read-only view of the stack's data stores, for waiting and sampling."""

    def __init__(self, probe: PgProbe, redis: aioredis.Redis) -> None:
        self.probe = probe
        self.redis = redis
        self.keys = RedisKeys(NAMESPACE)

    async def unfinished(self) -> int:
        return int(
            await self.probe.fetchval(
                "SELECT count(*) FROM jobs WHERE status = ANY($1::varchar[])", list(UNFINISHED)
            )
        )

    async def counts(self) -> dict[str, int]:
        rows = await self.probe.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        return {row["status"]: int(row["n"]) for row in rows}

    async def wait_all_finished(self, *, expected_rate: float, timeout: float) -> float:
        """Polls until no job is unfinished; returns the `time.monotonic()` it saw that. Polls
        less often while many remain, so the polling costs the database little."""
        loop_deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = await self.unfinished()
            if remaining == 0:
                return asyncio.get_running_loop().time()
            if asyncio.get_running_loop().time() > loop_deadline:
                raise TimeoutError(f"{remaining} jobs still unfinished after {timeout}s")
            await asyncio.sleep(min(1.0, max(0.02, remaining / max(expected_rate, 1.0) / 4)))

    async def outbox_size(self) -> int:
        return int(await self.probe.fetchval("SELECT count(*) FROM outbox"))

    async def stream_length(self) -> int:
        return int(await self.redis.xlen(self.keys.events_stream))

    async def queue_length(self) -> int:
        return int(await self.redis.llen(self.keys.queue("default")))

    async def redis_memory(self) -> int:
        info = await self.redis.info("memory")
        return int(info.get("used_memory", 0))

    async def job_times(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for offset in range(0, len(job_ids), 5000):
            rows = await self.probe.fetch(
                "SELECT id::text AS id, status, created_at, queued_at, started_at, finished_at, "
                "updated_at "
                "FROM jobs WHERE id = ANY($1::uuid[])",
                job_ids[offset : offset + 5000],
            )
            found.update({row["id"]: dict(row) for row in rows})
        return found


def process_names(stack: Stack) -> list[str]:
    return [GATEWAY, JOB_SERVICE, RESULT_SERVICE, *stack.worker_names]
