"""Conveyor's scenarios, each on the running stack and each waiting until every job it
submitted is finished before it returns (so the next one starts on an idle system)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conveyor_bench.conveyor import Meter, Observer
from conveyor_bench.loadgen import (
    LoadClient,
    SubmittedJob,
    closed_loop,
    open_loop,
    submit_batches,
)
from conveyor_bench.processes import per_process_memory
from conveyor_bench.stats import latency_summary, rate


@dataclass
class Context:
    client: LoadClient
    meter: Meter
    observer: Observer
    # Drain-rate guess for the polling cadence and time-outs, updated as figures come in.
    expected_rate: float = 300.0

    def finish_timeout(self, jobs: int) -> float:
        return 120.0 + jobs / max(self.expected_rate, 50.0) * 3


async def _check_none_failed(ctx: Context) -> None:
    counts = await ctx.observer.counts()
    bad = {k: v for k, v in counts.items() if k not in ("SUCCEEDED",)}
    if bad:
        raise RuntimeError(f"jobs not SUCCEEDED after a scenario: {bad}")


async def warm_up(ctx: Context, jobs: int) -> None:
    """Connections, prepared statements, the catalog and auth caches, the worker's pool."""
    await submit_batches(ctx.client, jobs=jobs, batch_size=max(1, jobs // 2), senders=1)
    await asyncio.gather(*(ctx.client.submit_noop() for _ in range(20)))
    await ctx.observer.wait_all_finished(expected_rate=ctx.expected_rate, timeout=120)
    await _check_none_failed(ctx)


async def batch_drain(ctx: Context, *, jobs: int, batch_size: int, senders: int) -> dict[str, Any]:
    """Batch submit and end-to-end drain in one: `jobs` submitted in batches while the worker
    runs; accepted/s over the submit phase, drained/s until every job is SUCCEEDED in
    PostgreSQL, and the cost of each job from submit to SUCCEEDED (batch mode)."""
    before = await ctx.meter.snapshot()
    outcome = await submit_batches(ctx.client, jobs=jobs, batch_size=batch_size, senders=senders)
    submit_cost = await ctx.meter.cost(before, jobs)
    done = await ctx.observer.wait_all_finished(
        expected_rate=ctx.expected_rate, timeout=ctx.finish_timeout(jobs)
    )
    cost = await ctx.meter.cost(before, jobs)
    await _check_none_failed(ctx)
    drain_seconds = done - outcome.first_sent
    ctx.expected_rate = jobs / drain_seconds
    return {
        "batch_submit": {
            "jobs": jobs,
            "batch_size": batch_size,
            "senders": senders,
            "seconds": round(outcome.seconds, 3),
            "accepted_per_second": rate(jobs, outcome.seconds),
            "batch_latency": latency_summary(outcome.request_seconds),
            "cores_used": submit_cost["cores_used"],
        },
        "drain": {
            "jobs": jobs,
            "seconds": round(drain_seconds, 3),
            "drained_per_second": rate(jobs, drain_seconds),
        },
        "cost_batch": cost,
    }


async def single_submit(ctx: Context, *, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` concurrent clients POSTing one job each at a time, for `seconds`; then the
    backlog drains, and the cost of each job from submit to SUCCEEDED (single mode) is taken
    over both. The jobs over the time from the first send until the last job finished is the
    rate this deployment carries end to end when every job comes alone."""
    before = await ctx.meter.snapshot()
    started = asyncio.get_running_loop().time()
    outcome = await closed_loop(ctx.client, clients=clients, seconds=seconds)
    submit_cost = await ctx.meter.cost(before, outcome.jobs)
    done = await ctx.observer.wait_all_finished(
        expected_rate=ctx.expected_rate, timeout=ctx.finish_timeout(outcome.jobs)
    )
    cost = await ctx.meter.cost(before, outcome.jobs)
    await _check_none_failed(ctx)
    return {
        "single_submit": {
            "clients": clients,
            "seconds": round(outcome.seconds, 3),
            "jobs": outcome.jobs,
            "errors": outcome.errors,
            "accepted_per_second": rate(outcome.jobs, outcome.seconds),
            "drained_per_second": rate(outcome.jobs, done - started),
            "latency": latency_summary(outcome.latencies),
            "cores_used": submit_cost["cores_used"],
        },
        "cost_single": cost,
    }


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def _latencies(
    jobs: list[SubmittedJob], times: dict[str, dict[str, Any]]
) -> dict[str, dict[str, float | int | None]]:
    created: list[float] = []
    queued: list[float] = []
    picked: list[float] = []
    started: list[float] = []
    finished: list[float] = []
    recorded: list[float] = []
    visible: list[float] = []
    finished_to_visible: list[float] = []
    answered: list[float] = []
    for job in jobs:
        answered.append(job.answered - job.sent)
        row = times.get(job.job_id)
        if row is None:
            continue
        for bucket, value in (
            (created, _seconds(row["created_at"], job.submitted_at)),
            (queued, _seconds(row["queued_at"], row["created_at"])),
            (picked, _seconds(row["started_at"], row["queued_at"])),
            (started, _seconds(row["started_at"], job.submitted_at)),
            (finished, _seconds(row["finished_at"], job.submitted_at)),
            (recorded, _seconds(row["updated_at"], row["finished_at"])),
        ):
            if value is not None:
                bucket.append(value)
        if job.visible is not None:
            visible.append(job.visible - job.sent)
            value = _seconds(job.visible_at, row["finished_at"])
            if value is not None:
                finished_to_visible.append(value)
    return {
        "submit_answered": latency_summary(answered),
        "submit_to_started": latency_summary(started),
        # submit→started in three legs: the request until the row's insert time, the outbox
        # relay (insert → QUEUED), and Redis + the worker (QUEUED → started).
        "submit_to_created": latency_summary(created),
        "created_to_queued": latency_summary(queued),
        "queued_to_started": latency_summary(picked),
        "submit_to_finished": latency_summary(finished),
        "finished_to_recorded": latency_summary(recorded),
        "submit_to_visible": latency_summary(visible),
        "finished_to_visible": latency_summary(finished_to_visible),
    }


async def steady(
    ctx: Context, *, per_second: float, seconds: float, sample_every: int, poll_interval: float
) -> dict[str, Any]:
    """Open loop at `per_second` for `seconds`. submit→started is the job's `started_at` (the
    worker's clock) minus the client's submit time, both UTC on one machine, for every job;
    SUCCEEDED-visible is when a `GET /v1/jobs/{id}` first shows it, for every
    `sample_every`-th job, polled every `poll_interval` s."""
    outcome = await open_loop(
        ctx.client,
        rate=per_second,
        seconds=seconds,
        sample_every=sample_every,
        poll_interval=poll_interval,
    )
    await ctx.observer.wait_all_finished(
        expected_rate=ctx.expected_rate, timeout=ctx.finish_timeout(len(outcome.jobs))
    )
    await _check_none_failed(ctx)
    times = await ctx.observer.job_times([job.job_id for job in outcome.jobs])
    return {
        "rate_per_second": per_second,
        "seconds": seconds,
        "jobs": len(outcome.jobs),
        "achieved_per_second": rate(len(outcome.jobs), outcome.seconds),
        "errors": outcome.errors,
        "late_sends": outcome.late_sends,
        "stopped_overloaded_at": outcome.stopped_at,
        "visibility_sample_every": sample_every,
        "visibility_poll_interval_ms": round(poll_interval * 1000, 1),
        "visibility_polls": outcome.polls,
        **_latencies(outcome.jobs, times),
    }


async def soak(
    ctx: Context, *, per_second: float, seconds: float, warmup: float, sample_interval: float
) -> dict[str, Any]:
    """`per_second` for `seconds`; every `sample_interval` s the RSS of every process, the
    lifecycle stream's and the queue's length, the outbox size and Redis's memory."""
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    overloaded = asyncio.Event()
    # More than this many unfinished jobs means a backlog that only grows: the rest of the soak
    # would measure the queue, not the platform, and its drain could take an hour.
    backlog_limit = per_second * 30

    async def sample() -> None:
        unfinished = await ctx.observer.unfinished()
        memory = {name: per_process_memory(pid) for name, pid in ctx.meter.pids().items()}
        samples.append(
            {
                "t": round(time.monotonic() - start, 1),
                "memory_bytes": memory,
                "stream_length": await ctx.observer.stream_length(),
                "queue_length": await ctx.observer.queue_length(),
                "outbox_rows": await ctx.observer.outbox_size(),
                "redis_used_memory": await ctx.observer.redis_memory(),
                "unfinished_jobs": unfinished,
            }
        )
        if unfinished > backlog_limit:
            overloaded.set()

    async def sampler() -> None:
        while True:
            await sample()
            await asyncio.sleep(sample_interval)

    task = asyncio.create_task(sampler())
    try:
        outcome = await open_loop(ctx.client, rate=per_second, seconds=seconds, stop=overloaded)
    finally:
        task.cancel()
    await sample()  # the end, before the last jobs drain
    await ctx.observer.wait_all_finished(
        expected_rate=ctx.expected_rate, timeout=ctx.finish_timeout(int(backlog_limit))
    )
    await _check_none_failed(ctx)
    times = await ctx.observer.job_times([job.job_id for job in outcome.jobs])
    return {
        "rate_per_second": per_second,
        "seconds": seconds,
        "stopped_overloaded_at": outcome.stopped_at,
        "warmup_seconds": warmup,
        "jobs": len(outcome.jobs),
        "achieved_per_second": rate(len(outcome.jobs), outcome.seconds),
        "errors": outcome.errors,
        "late_sends": outcome.late_sends,
        "memory": memory_growth(samples, warmup),
        "bounded": boundedness(samples),
        "latency": {
            k: v
            for k, v in _latencies(outcome.jobs, times).items()
            if k in ("submit_answered", "submit_to_started", "finished_to_recorded")
        },
        "samples": samples,
    }


def memory_growth(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    """Memory of each process at the first sample after warm-up and at the last; the growth is
    of USS (private memory), RSS is shown beside it."""
    warm = next((s for s in samples if s["t"] >= warmup), None)
    if warm is None or not samples or warm is samples[-1]:
        return {}
    end = samples[-1]
    result: dict[str, Any] = {}
    for name, processes in end["memory_bytes"].items():
        for key, memory in processes.items():
            start = warm["memory_bytes"].get(name, {}).get(key)
            if not start or not start["uss"]:
                continue
            result[f"{name} {key}"] = {
                "warm_uss_bytes": start["uss"],
                "end_uss_bytes": memory["uss"],
                "warm_rss_bytes": start["rss"],
                "end_rss_bytes": memory["rss"],
                "growth_percent": round((memory["uss"] - start["uss"]) * 100 / start["uss"], 2),
            }
    return result


def boundedness(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Max and last of each backlog figure, and the mean of the last third against the first."""
    out: dict[str, Any] = {}
    third = max(1, len(samples) // 3)
    for key in ("stream_length", "queue_length", "outbox_rows", "redis_used_memory"):
        values = [s[key] for s in samples]
        if not values:
            continue
        out[key] = {
            "max": max(values),
            "last": values[-1],
            "first_third_mean": round(sum(values[:third]) / third, 1),
            "last_third_mean": round(sum(values[-third:]) / third, 1),
        }
    return out
