"""The limit on a warm shutdown.

SIGTERM makes Celery stop taking messages and wait for the running tasks, however long they
take. `ShutdownGrace` bounds that wait: when `CONVEYOR_WORKER_SHUTDOWN_GRACE_SECONDS` have passed,
it kills the pool processes and ends the worker at once, without acking. Nothing is lost by
that: the attempts cut short keep their leases only until the TTL runs out, job-service's
reconciler then gives those jobs their next attempt, and kombu's own redelivery of the unacked
messages (after the visibility timeout) meets the attempt fence and is skipped.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog

log = structlog.get_logger("conveyor.worker")

HARD_EXIT_CODE = 1
# Each exit hook (e.g. deleting the live-worker key) gets this long; a hung Redis must not
# stretch the grace.
HOOK_TIMEOUT_SECONDS = 2.0


def pool_processes(controller: Any) -> list[int]:
    """The pids of a prefork pool's processes, from the pool's own stats (as `celery inspect
    stats` shows them); none for the solo and threads pools, which run tasks in this process
    (and say so with this process's pid)."""
    pool = getattr(controller, "pool", None)
    if pool is None:
        return []
    try:
        info = pool.info
    except Exception:
        return []
    processes = info.get("processes", []) if isinstance(info, dict) else []
    return [int(pid) for pid in processes if pid and int(pid) != os.getpid()]


class ShutdownGrace:
    """Started once when a shutdown begins; exits the process hard when the grace runs out."""

    def __init__(
        self,
        grace_seconds: float,
        *,
        children: Callable[[], Sequence[int]],
        exit_hooks: Sequence[Callable[[], None]] = (),
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        self.grace_seconds = grace_seconds
        self._children = children
        self._exit_hooks = exit_hooks
        self._exit = exit_process
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.grace_seconds, self.expire)
            self._timer.name = "conveyor-shutdown-grace"
            self._timer.daemon = True
            self._timer.start()
        log.info("worker.shutdown_started", grace_seconds=self.grace_seconds)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def expire(self) -> None:
        children = list(self._children())
        log.warning(
            "worker.shutdown_grace_expired",
            grace_seconds=self.grace_seconds,
            killed_pool_processes=children,
        )
        # The pool processes first: left alive, they would finish their tasks (and renew their
        # leases) after the worker said it stopped.
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for hook in self._exit_hooks:
            runner = threading.Thread(target=_quietly, args=(hook,), daemon=True)
            runner.start()
            runner.join(HOOK_TIMEOUT_SECONDS)
        _flush_logs()
        self._exit(HARD_EXIT_CODE)


def _quietly(hook: Callable[[], None]) -> None:
    try:
        hook()
    except Exception as exc:
        log.warning("worker.exit_hook_failed", error=str(exc))


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
