"""Tasks for the fault tests, loaded through `CONVEYOR_TASK_MODULES=fault_tasks` (never part of
a real worker). Each notes what it did in a file the test reads, one line per event, so the
test can count how often a task body really ran."""

from __future__ import annotations

import os
import signal
import time

from pydantic import BaseModel, Field

from conveyor_worker import JobContext, TaskRegistry

registry = TaskRegistry()


class Note(BaseModel):
    path: str
    seconds: float = Field(default=0, ge=0)


def note(path: str, *words: object) -> None:
    # One write of one line with O_APPEND: lines from several processes never interleave.
    with open(path, "a", encoding="utf-8") as file:
        file.write(" ".join(str(w) for w in words) + "\n")


@registry.task("fault.record")
def record(args: Note, ctx: JobContext) -> int:
    """Notes its start (job, attempt, pid), sleeps `seconds`, notes its end."""
    note(args.path, "start", ctx.job_id, ctx.attempt, os.getpid())
    time.sleep(args.seconds)
    note(args.path, "end", ctx.job_id, ctx.attempt, os.getpid())
    return os.getpid()


@registry.task("fault.spin")
def spin(args: Note, ctx: JobContext) -> int:
    """Like `fault.record`, but busy in Python code (short sleeps) rather than one long sleep:
    what a cancel in the threads pool can interrupt."""
    note(args.path, "start", ctx.job_id, ctx.attempt, os.getpid())
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
    note(args.path, "end", ctx.job_id, ctx.attempt, os.getpid())
    return os.getpid()


@registry.task("fault.crash")
def crash(args: Note, ctx: JobContext) -> None:
    """Notes its start, then kills its own process (an OOM kill, a segfault)."""
    note(args.path, "start", ctx.job_id, ctx.attempt, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)
