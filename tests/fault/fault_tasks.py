"""Tasks that misbehave on purpose, loaded by the fault tests' workers through
`CONVEYOR_TASK_MODULES`. Each records every start in a Redis list so a test can prove how many
times, and never at once, a body ran."""

from __future__ import annotations

import os
import signal
import time

import redis
from pydantic import BaseModel

from conveyor_worker import JobContext, TaskRegistry

registry = TaskRegistry()


class Probe(BaseModel):
    seconds: float = 0.0


def _record(ctx: JobContext, what: str) -> None:
    url = os.environ["FAULT_PROBE_REDIS_URL"]
    client = redis.Redis.from_url(url)
    try:
        client.rpush(
            f"{os.environ['FAULT_PROBE_PREFIX']}:{ctx.job_id}",
            f"{what}:{ctx.attempt}:{time.time()}",
        )
    finally:
        client.close()


@registry.task("fault.slow", timeout_seconds=60, max_attempts=3)
def slow(args: Probe, ctx: JobContext) -> dict[str, float]:
    """Sleeps, recording when each attempt's body starts and ends."""
    _record(ctx, "start")
    time.sleep(args.seconds)
    _record(ctx, "end")
    return {"slept": args.seconds}


@registry.task("fault.crash", timeout_seconds=30, max_attempts=3)
def crash(args: Probe, ctx: JobContext) -> None:
    """Kills the process running it, every time (an OOM kill, a segfault)."""
    _record(ctx, "start")
    os.kill(os.getpid(), signal.SIGKILL)


@registry.task("fault.hang", timeout_seconds=2, max_attempts=2)
def hang(args: Probe, ctx: JobContext) -> None:
    """Runs past its time limit, every time."""
    _record(ctx, "start")
    time.sleep(3600)
