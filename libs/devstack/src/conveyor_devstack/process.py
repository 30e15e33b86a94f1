"""One supervised child process.

Each child leads its own process group (its own session), so that:
- a Ctrl-C in the terminal reaches only the supervisor, which then stops the children in order
  instead of every process dying at once mid-request;
- a stop or a kill reaches the child's own children too (Celery's pool processes, uvicorn's
  reloader), and nothing is left behind.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import structlog

from conveyor_devstack.output import Output

log = structlog.get_logger(__name__)

DEFAULT_GRACE_SECONDS = 15.0


_PROC = Path("/proc")


def _live_members_in_proc(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (not a zombie), read from /proc."""
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # After the command name: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _group_alive(pgid: int) -> bool:
    """Whether group `pgid` still has a running member. Zombies don't count: killed orphans
    wait for the init process to reap them, which can take seconds, and a zombie still holds
    its id, so the group id cannot be reused meanwhile."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _PROC.is_dir():
        return _live_members_in_proc(pgid)
    return True


class Child:
    """A named command run as a child process; can be started again after it stopped."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        output: Output,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.output = output
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        # Set when we asked it to stop: an exit we did not ask for is a crash.
        self.stopping = False
        self._groups: list[int] = []  # every group this child has led that may still have members
        self._recent: collections.deque[str] = collections.deque(maxlen=200)
        self._pump: threading.Thread | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def crashed(self) -> bool:
        """It ran, exited, and nobody asked it to."""
        return self.process is not None and not self.stopping and self.process.poll() is not None

    @property
    def log_path(self) -> Path | None:
        return self.output.log_path(self.name)

    def tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is not None:
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                return ""
            return "\n".join(text.splitlines()[-lines:])
        return "\n".join(list(self._recent)[-lines:])

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Child:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.sweep()
        stdout, pump = self.output.open_for(self.name)
        try:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if not isinstance(stdout, int):
                stdout.close()
        self.stopping = False
        self._groups.append(self.process.pid)
        if pump:
            assert self.process.stdout is not None
            self._pump = threading.Thread(
                target=self._copy_lines, args=(self.process.stdout,), daemon=True,
                name=f"output-{self.name}",
            )  # fmt: skip
            self._pump.start()
        log.debug("devstack.process.started", process=self.name, pid=self.process.pid)
        return self

    def _copy_lines(self, stream: IO[bytes]) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                self._recent.append(line.decode("utf-8", errors="replace").rstrip("\r\n"))
                self.output.write_line(self.name, line)

    def signal(self, sig: int) -> None:
        """`sig` to the main process only."""
        if self.alive():
            assert self.process is not None
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass

    def signal_group(self, sig: int) -> None:
        """`sig` to the main process and everything it started."""
        if self.process is not None and _group_alive(self.process.pid):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def request_stop(self) -> None:
        """SIGTERM to the main process, as Kubernetes sends it to PID 1: the service (or Celery's
        warm shutdown) decides how to wind down its own children."""
        self.stopping = True
        self.signal(signal.SIGTERM)

    def stop(
        self, grace: float = DEFAULT_GRACE_SECONDS, *, hurry: Callable[[], bool] | None = None
    ) -> int | None:
        """SIGTERM, then SIGKILL to the whole group after `grace` seconds (or as soon as
        `hurry()` turns true); returns the exit code."""
        self.request_stop()
        self.finish_stop(time.monotonic() + grace, hurry=hurry)
        return self.returncode

    def finish_stop(self, deadline: float, *, hurry: Callable[[], bool] | None = None) -> None:
        """Second half of `stop`, so that a caller can SIGTERM many children at once first."""
        while self.alive() and time.monotonic() < deadline and not (hurry and hurry()):
            self.wait(0.05)
        if self.alive():
            log.warning("devstack.process.killed_after_grace", process=self.name)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the whole group (like `kill -9` of a container): nothing is left."""
        self.stopping = True
        self.signal_group(signal.SIGKILL)
        self.wait(10)
        self.sweep()
        if self._pump is not None:
            self._pump.join(timeout=2)
            self._pump = None

    def kill_main(self) -> None:
        """`kill -9` of the main process alone; its children (a Celery pool) are orphaned until
        the next `stop`, `kill`, `start` or `sweep`. For fault tests of exactly that."""
        self.stopping = True
        self.signal(signal.SIGKILL)
        self.wait(10)

    def sweep(self) -> None:
        """SIGKILL whatever is left in the groups this child has led. A group is forgotten once
        nothing in it runs (zombies keep its id from being reused until they are reaped), so its
        id can never be mistaken for a later, unrelated group."""
        remaining: list[int] = []
        for pgid in self._groups:
            if not _group_alive(pgid):
                continue
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 5
            while _group_alive(pgid) and time.monotonic() < deadline:
                if self.process is not None and self.process.pid == pgid:
                    self.wait(0.05)
                else:
                    time.sleep(0.05)
            if _group_alive(pgid):
                remaining.append(pgid)  # unkillable (e.g. in uninterruptible sleep): retry later
        self._groups = remaining

    def restart(self, grace: float = DEFAULT_GRACE_SECONDS) -> Child:
        self.stop(grace)
        return self.start()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.returncode}"
        return f"<Child {self.name} {state}>"
