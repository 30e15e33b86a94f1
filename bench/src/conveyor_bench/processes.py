"""CPU and memory of process trees (a service, a Celery worker and its pool children, a
PostgreSQL postmaster and its backends), and of the whole machine, so that the load of other
programs on a shared machine is reported beside the figures."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants alive now."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def tree_usage(pid: int) -> Usage:
    """CPU (user + system, of the processes alive now) and RSS of `pid` and its descendants."""
    cpu = 0.0
    rss = 0
    for member in tree_pids(pid):
        try:
            proc = psutil.Process(member)
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return Usage(cpu, rss)


def per_process_memory(pid: int) -> dict[str, dict[str, int]]:
    """RSS and USS of each process of the tree, keyed `<pid>:<name>` (a pool child apart from
    its parent: a leak in one of them is hidden in a sum). USS, the memory only that process
    holds, is what a leak grows; RSS also counts shared pages as they are touched (a PostgreSQL
    backend's RSS climbs towards `shared_buffers` without leaking anything)."""
    found: dict[str, dict[str, int]] = {}
    for member in tree_pids(pid):
        try:
            proc = psutil.Process(member)
            info = proc.memory_full_info()
            found[f"{member}:{proc.name()}"] = {"rss": info.rss, "uss": info.uss}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores) since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    per_process: dict[str, float]
    machine: float


class CpuMeter:
    """CPU seconds of named process trees between two snapshots, and the rest of the machine's
    load in the same interval (other engineers' tests on a shared machine)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def snapshot(self) -> CpuSnapshot:
        per_process = {name: tree_usage(pid).cpu_seconds for name, pid in self.pids.items()}
        per_process["bench"] = own_cpu_seconds()
        return CpuSnapshot(time.monotonic(), per_process, machine_busy_seconds())

    @staticmethod
    def delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
        """CPU seconds per process name, plus `other` (the rest of the machine) and `wall`."""
        spent = {
            name: max(0.0, after.per_process.get(name, 0.0) - before.per_process[name])
            for name in before.per_process
        }
        machine = max(0.0, after.machine - before.machine)
        spent["other"] = max(0.0, machine - sum(spent.values()))
        spent["wall"] = after.at - before.at
        return spent


def start_logged_process(
    args: Sequence[str], *, env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(args),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM, then SIGKILL to its whole group after `grace` (nothing is left behind)."""
    import os
    import signal

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        pass
