"""`--profile DIR`: py-spy samples the services and the worker (with its pool children) while
the batch drain runs, as collapsed stacks (`<name>.txt`, for flamegraph tools or speedscope) and
a summary of where the time goes. Profiling slows what it samples, so a profiled run's figures
are not the ones to quote."""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROFILED = ("api-gateway", "job-service", "worker-1", "bare-celery-worker")
SCENARIOS = ("yardstick", "batch-drain", "single-submit", "steady", "steady-sustainable", "soak")


@dataclass(frozen=True)
class ProfileRequest:
    directory: Path
    scenarios: tuple[str, ...] = ("batch-drain",)

    def wants(self, scenario: str) -> bool:
        return scenario in self.scenarios

    def profiler(self, scenario: str, pids: Mapping[str, int]) -> Profiler:
        return Profiler(self.directory / scenario, pids)


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, out_dir: Path, pids: Mapping[str, int], rate: int = 97) -> None:
        self.out_dir = out_dir
        self.pids = {name: pid for name, pid in pids.items() if name in PROFILED}
        self.rate = rate
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy is not installed (it is in the dev dependency group)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self.running[name] = subprocess.Popen(
                [binary, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw",
                 "--subprocesses", "--nonblocking", "--output", str(self.out_dir / f"{name}.txt")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=(self.out_dir / f"{name}.py-spy.log").open("wb"),
            )  # fmt: skip

    def stop(self) -> dict[str, Any]:
        for process in self.running.values():
            process.send_signal(signal.SIGINT)
        for process in self.running.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        summaries = {}
        for name in self.running:
            path = self.out_dir / f"{name}.txt"
            if path.exists():
                summary = summarize(path)
                summaries[name] = summary
                (self.out_dir / f"{name}.summary.txt").write_text(render_summary(name, summary))
        return summaries


# Leaf frames of a thread that waits (py-spy cannot always tell idle threads here): the event
# loop in epoll, anyio's worker threads, billiard's pool children waiting for a task.
IDLE_LEAVES = frozenset(
    {
        "Condition.wait", "Runner.run", "BaseEventLoop.run_forever", "EpollSelector.select",
        "select", "poll", "Event.wait", "Queue.get", "Connection._recv", "Connection.poll",
        "_poll", "wait", "sleep", "Thread.join", "Hub.create_loop", "asynloop",
    }
)  # fmt: skip


OUR_PACKAGES = ("conveyor_", "api_gateway/", "job_service/", "result_service/", "jobs/",
                "auth/", "api_keys/", "tasks/", "builtin/")  # fmt: skip


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/module.py:123)"; keep function + file.
    function, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    parts = Path(file).parts
    short = "/".join(parts[-2:]) if parts else file
    return f"{function} ({short})"


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function of the busy samples (idle waits left out), from
    py-spy's collapsed stacks."""
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames or frames[-1].split(" (", 1)[0] in IDLE_LEAVES:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return (
            [(f, round(c * 100 / total, 1)) for f, c in counter.most_common(top)] if total else []
        )

    ours = collections.Counter(
        {f: c for f, c in inclusive.items() if f.split(" (", 1)[-1].startswith(OUR_PACKAGES)}
    )
    return {
        "samples": total,
        "self_percent": shares(self_counts),
        "inclusive_percent": shares(inclusive),
        "conveyor_inclusive_percent": shares(ours),
    }


def render_summary(name: str, summary: dict[str, Any]) -> str:
    lines = [f"{name}: {summary['samples']} busy samples", "", "self %:"]
    lines += [f"  {share:5.1f}  {frame}" for frame, share in summary["self_percent"]]
    lines += ["", "inclusive %:"]
    lines += [f"  {share:5.1f}  {frame}" for frame, share in summary["inclusive_percent"]]
    lines += ["", "inclusive %, Conveyor's own functions:"]
    lines += [f"  {share:5.1f}  {frame}" for frame, share in summary["conveyor_inclusive_percent"]]
    return "\n".join(lines) + "\n"
