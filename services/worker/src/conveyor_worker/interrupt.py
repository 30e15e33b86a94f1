"""Stopping a running task from another thread: how the lease heartbeat ends a cancelled job.

A task on the main thread of its process (a prefork child, or the solo pool) is stopped with
`os.kill(os.getpid(), SIGUSR1)`, whose handler raises `TaskInterrupted` in it, as billiard's soft
time limit raises `SoftTimeLimitExceeded`; blocking calls (sleep, socket reads) are interrupted
too. A task on another thread (the threads pool) is stopped with `PyThreadState_SetAsyncExc`,
which raises at its next Python instruction: a blocking call already in progress finishes first.

Either way the exception lands only inside the task's region (`with interruptible:`): it is fired
at most once and only while the region is open, and one still pending when the region closes
is dropped, so it never surfaces in Celery's own code.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from conveyor_worker.errors import TaskInterrupted

INTERRUPT_SIGNAL = signal.SIGUSR1


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    # Left without argtypes on purpose: None must reach C as NULL (clear), not as Py_None.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class _SignalRelay:
    """This process's SIGUSR1 handler. A signal the heartbeat sent raises `TaskInterrupted` in the
    open region (or is dropped when none is open); any other SIGUSR1 goes to the handler this one
    replaced: billiard's soft time limit in a prefork child, Celery's stack dump in the solo
    pool's main process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.previous: Any = signal.getsignal(INTERRUPT_SIGNAL)
        self.outstanding = False  # a signal we sent that the handler has not seen yet
        self.target: Interruptible | None = None
        signal.signal(INTERRUPT_SIGNAL, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs on the main thread between two bytecodes of whatever it was doing, so it takes no
        # lock (the main thread may hold one) and only flips flags.
        if self.outstanding:
            self.outstanding = False
            target = self.target
            if target is not None and target._consume():
                raise TaskInterrupted(target.reason)
            return
        if callable(self.previous):
            self.previous(signum, frame)


_relay: _SignalRelay | None = None
_relay_lock = threading.Lock()


def _signal_relay() -> _SignalRelay:
    """The relay of this process, installed on first use (from the main thread: only it may set
    signal handlers). A forked child installs its own over what the pool set up."""
    global _relay
    with _relay_lock:
        if _relay is None or _relay.pid != os.getpid():
            _relay = _SignalRelay()
        return _relay


class Interruptible:
    """The region of one task run that another thread may interrupt, once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._fired = False
        self._pending = False  # fired, and neither raised nor dropped yet
        self._thread_id: int | None = None
        self._relay: _SignalRelay | None = None
        self.reason = ""

    @property
    def fired(self) -> bool:
        return self._fired

    def __enter__(self) -> Interruptible:
        on_main_thread = threading.current_thread() is threading.main_thread()
        relay = _signal_relay() if on_main_thread else None
        with self._lock:
            self._thread_id = threading.get_ident()
            self._relay = relay
            if relay is not None:
                relay.target = self
            self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False  # first, and without the lock: nothing fires after this line
        with self._lock:
            if self._pending and self._relay is None and self._thread_id is not None:
                _set_async_exc(self._thread_id, None)  # drop one not raised yet
            self._pending = False
            if self._relay is not None and self._relay.target is self:
                self._relay.target = None

    def interrupt(self, reason: str) -> bool:
        """Raises `TaskInterrupted` in the task if its region is open and this is the first
        call; returns whether it fired. Safe from any thread."""
        with self._lock:
            if not self._open or self._fired or self._thread_id is None:
                return False
            self._fired = True
            self._pending = True
            self.reason = reason
            if self._relay is not None:
                self._relay.outstanding = True
                os.kill(os.getpid(), INTERRUPT_SIGNAL)
            else:
                _set_async_exc(self._thread_id, TaskInterrupted)
            return True

    def _consume(self) -> bool:
        """Called by the signal handler on the task's thread: whether to raise now."""
        if self._open and self._pending:
            self._pending = False
            return True
        return False
