"""Stand-in commands (`fake_service.py`) and process checks for the devstack tests."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FAKE_SERVICE = str(Path(__file__).with_name("fake_service.py"))
SERVICE_NAMES = ["job-service", "result-service", "api-gateway"]


def pid_gone(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (it runs nothing and holds nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@dataclass
class Fakes:
    pid_dir: Path
    seen: set[int] = field(default_factory=set)

    @property
    def env(self) -> dict[str, str]:
        return {"FAKE_PID_DIR": str(self.pid_dir)}

    def commands(self, workers: int = 1) -> dict[str, list[str]]:
        names = SERVICE_NAMES + [f"worker-{i + 1}" for i in range(workers)]
        return {name: [sys.executable, FAKE_SERVICE, name] for name in names}

    @property
    def cli(self) -> list[str]:
        return [sys.executable, FAKE_SERVICE]

    def pids(self) -> dict[str, list[int]]:
        """`{name: [pid, grandchild pid]}` from the pid files the stand-ins wrote."""
        found = {
            path.stem: [int(p) for p in path.read_text().split()]
            for path in sorted(self.pid_dir.glob("*.pids"))
        }
        for pids in found.values():
            self.seen.update(pids)
        return found

    def wait_pids(self, names: list[str], timeout: float = 30.0) -> dict[str, list[int]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.pids()
            if all(name in found for name in names):
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"pid files for {names} not all written: {sorted(found)}")
            time.sleep(0.05)

    pid_gone = staticmethod(pid_gone)

    @staticmethod
    def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
        """Waits until every pid is gone; returns those still running after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [pid for pid in pids if not pid_gone(pid)]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    fakes = Fakes(pid_dir)
    yield fakes
    # Never leave a process behind, even when the test failed.
    fakes.pids()
    for pid in fakes.seen:
        if not pid_gone(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
