"""One bench run: backends, the yardstick, the stack, every scenario, the results."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog

from conveyor_bench import event_loop, http_floor, scenarios
from conveyor_bench.backends import Backends, backends
from conveyor_bench.conveyor import (
    TENANT,
    Meter,
    Observer,
    StackSettings,
    settings_from_environment,
    start_stack,
)
from conveyor_bench.counters import PgProbe
from conveyor_bench.loadgen import make_client
from conveyor_bench.machine import library_versions, machine
from conveyor_bench.processes import own_cpu_seconds
from conveyor_bench.profiling import Profiler, ProfileRequest
from conveyor_bench.settings import BenchSettings
from conveyor_bench.yardstick import BareCelery, BareSettings
from conveyor_common.gc_pauses import freeze_startup_objects
from conveyor_devstack.stack import Stack

log = structlog.get_logger("conveyor_bench")


def run(
    settings: BenchSettings, *, log_dir: Path | None, profile: ProfileRequest | None
) -> dict[str, Any]:
    started = datetime.now(UTC)
    wall = time.monotonic()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="conveyor-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    overrides = settings_from_environment()
    results: dict[str, Any] = {
        "date": started.isoformat(),
        "mode": settings.mode,
        "machine": machine(),
        "settings": settings.as_dict(),
        # Settings of the stack changed for this run (BENCH_CONVEYOR_*): not the defaults.
        "stack_overrides": overrides,
        "log_dir": str(log_dir),
    }
    with backends(durable_postgres=settings.durable_postgres) as found:
        results["backends"] = found.describe()
        results["versions"] = {**library_versions(), "redis": _redis_version(found.redis_url)}
        log.info("bench.yardstick", jobs=settings.jobs)
        # The generator's own full collections would count as the latency of what it measures.
        freeze_startup_objects()
        results["yardstick"] = run_yardstick(settings, found, log_dir, profile)
        log.info("bench.http_floor", clients=settings.single_clients)
        with http_floor.FloorServer() as floor:
            results["http_floor"] = event_loop.run(
                http_floor.measure(
                    floor.url, clients=settings.single_clients, seconds=settings.single_seconds
                )
            )
        log.info("bench.stack.starting")
        stack = start_stack(
            found,
            StackSettings(
                workers=settings.workers,
                concurrency=settings.concurrency,
                pool=settings.pool,
                log_level=settings.log_level,
                log_dir=log_dir,
                overrides=overrides,
            ),
        )
        try:
            api_key = stack.create_api_key(TENANT, "bench")
            results.update(
                event_loop.run(_conveyor(settings, found, stack, api_key, results, profile))
            )
        finally:
            stack.stop(grace=15.0)
    results["machine"]["load_average_end"] = machine()["load_average"]
    results["duration_seconds"] = round(time.monotonic() - wall, 1)
    return results


# A steady run whose submit→started p99 is past this was measuring a queue that built up, not
# the platform's latency (the fast machine of an earlier round: 38 ms at 200 jobs/s).
KEPT_UP_P99_MS = 250.0
# Each further try at a sustainable rate is this fraction of the one before.
STEP_DOWN = 0.7
STEADY_TRIES = 3


def kept_up(steady: dict[str, Any]) -> bool:
    return steady.get("stopped_overloaded_at") is None and (
        (steady.get("submit_to_started", {}).get("p99_ms") or 0) < KEPT_UP_P99_MS
    )


def sustainable_rate(target: float, single_submit: dict[str, Any], steady: dict[str, Any]) -> float:
    """`target` if the steady run kept up with it, else 60% of what single submits carried end
    to end: accepting them is not enough when the worker, sharing the cores, drains slower."""
    if kept_up(steady):
        return target
    carried = min(
        single_submit["accepted_per_second"],
        single_submit.get("drained_per_second") or single_submit["accepted_per_second"],
    )
    return float(min(target, max(5, round(carried * 0.6))))


def _redis_version(url: str) -> str | None:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version"))
    finally:
        client.close()


def run_yardstick(
    settings: BenchSettings, found: Backends, log_dir: Path, profile: ProfileRequest | None = None
) -> dict[str, Any]:
    bare = BareSettings(
        redis_url=found.redis_url,
        redis_port=found.redis_port,
        redis_pid=found.redis_pid,
        concurrency=settings.concurrency,
        pool=settings.pool,
        log_level=settings.log_level,
        log_dir=log_dir,
    )
    with BareCelery(bare) as yardstick:
        # A short run first, so imports and connections are warm on both sides alike.
        yardstick.drain(min(settings.warmup_jobs, settings.jobs))
        profiler: Profiler | None = None
        if profile is not None and profile.wants("yardstick"):
            profiler = profile.profiler("yardstick", {"bare-celery-worker": yardstick.worker.pid})
            profiler.start()
        try:
            drain = yardstick.drain(settings.jobs)
        finally:
            if profiler is not None:
                drain["profile"] = profiler.stop()
        steady = yardstick.steady(settings.steady_rate, settings.bare_steady_seconds)
    return {"drain": drain, "steady": steady}


async def _conveyor(
    settings: BenchSettings,
    found: Backends,
    stack: Stack,
    api_key: str,
    results: dict[str, Any],
    profile: ProfileRequest | None,
) -> dict[str, Any]:
    probe = await PgProbe.connect(found.database_url)
    redis_client = aioredis.Redis.from_url(found.redis_url)
    connections = max(settings.single_clients, settings.batch_senders) + 8
    client = make_client(stack.gateway_url, api_key, connections=connections)
    out: dict[str, Any] = {}
    try:
        results["versions"]["postgresql"] = await probe.server_version()
        results["backends"]["pg_stat_statements"] = probe.statements_available
        meter = Meter(stack, found, probe, redis_client)
        ctx = scenarios.Context(client, meter, Observer(probe, redis_client))
        ctx.expected_rate = results["yardstick"]["drain"]["drain_per_second"]
        generator: dict[str, float] = {}

        async def step(name: str, coro: Any) -> dict[str, Any]:
            log.info("bench.scenario", scenario=name)
            profiler = None
            if profile is not None and profile.wants(name):
                profiler = profile.profiler(name, meter.pids())
                profiler.start()
            cpu = own_cpu_seconds()
            wall = time.monotonic()
            try:
                value: dict[str, Any] = await coro
            finally:
                if profiler is not None:
                    out.setdefault("profiles", {})[name] = profiler.stop()
            spent = time.monotonic() - wall
            generator[name] = round((own_cpu_seconds() - cpu) / spent, 3) if spent else 0.0
            return value

        await step("warm-up", scenarios.warm_up(ctx, settings.warmup_jobs))
        out.update(
            await step(
                "batch-drain",
                scenarios.batch_drain(
                    ctx,
                    jobs=settings.jobs,
                    batch_size=settings.batch_size,
                    senders=settings.batch_senders,
                ),
            )
        )
        out.update(
            await step(
                "single-submit",
                scenarios.single_submit(
                    ctx, clients=settings.single_clients, seconds=settings.single_seconds
                ),
            )
        )
        out["steady"] = await step(
            "steady",
            scenarios.steady(
                ctx,
                per_second=settings.steady_rate,
                seconds=settings.steady_seconds,
                sample_every=settings.visibility_sample_every,
                poll_interval=settings.visibility_poll_interval,
            ),
        )
        # A rate this deployment can carry, from its single-submit throughput: where the target
        # rate is beyond it, the latencies above are a queue's, so they are measured again at
        # this rate, and the soak runs at it (a soak that only fills a backlog finds no leaks).
        # The first guess can still be too high (the worker's rate with every job alone is below
        # its rate in a drain), so a rate that builds a queue too is stepped down.
        carried = sustainable_rate(settings.steady_rate, out["single_submit"], out["steady"])
        tries: list[dict[str, Any]] = []
        while carried < settings.steady_rate:
            result = await step(
                "steady-sustainable",
                scenarios.steady(
                    ctx,
                    per_second=carried,
                    seconds=settings.steady_seconds,
                    sample_every=max(1, round(settings.visibility_sample_every * carried / 200)),
                    poll_interval=settings.visibility_poll_interval,
                ),
            )
            out["steady_sustainable"] = result
            tries.append({"rate": carried, "kept_up": kept_up(result)})
            if kept_up(result) or len(tries) == STEADY_TRIES:
                break
            carried = float(max(5, round(carried * STEP_DOWN)))
        if tries:
            out["steady_sustainable"]["tries"] = tries
        if settings.soak_seconds > 0:
            out["soak"] = await step(
                "soak",
                scenarios.soak(
                    ctx,
                    per_second=carried,
                    seconds=settings.soak_seconds,
                    warmup=settings.soak_warmup_seconds,
                    sample_interval=settings.soak_sample_seconds,
                ),
            )
        # The load generator's own CPU (cores used while each scenario ran): near 1.0 means
        # it, not Conveyor, set the pace.
        out["generator_cores"] = generator
        out["final_counts"] = await ctx.observer.counts()
    finally:
        await client.aclose()
        await redis_client.aclose()
        await probe.close()
    return out
