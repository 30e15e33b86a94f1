"""Turning SIGINT/SIGTERM into one orderly shutdown.

The first signal raises `ShutdownRequested` in the main thread (wherever it is: starting Redis,
migrating, waiting for readiness, idling), so one `try/finally` stops everything. Later signals
never raise, so they cannot cut the clean-up short; a second Ctrl-C given a moment after the
first asks to hurry (SIGKILL instead of waiting out the grace period). Signals that arrive
together (the terminal's SIGINT plus one forwarded by `uv run` or `make`) count once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_SAME_SIGNAL_WINDOW = 1.0


class ShutdownRequested(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ShutdownSignals:
    def __init__(self) -> None:
        self.first_at: float | None = None
        self.hurry_event = threading.Event()

    def hurry(self) -> bool:
        return self.hurry_event.is_set()

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
            raise ShutdownRequested(signum)
        if now - self.first_at > _SAME_SIGNAL_WINDOW:
            self.hurry_event.set()


@contextmanager
def shutdown_on_signals() -> Iterator[ShutdownSignals]:
    state = ShutdownSignals()
    previous = {sig: signal.signal(sig, state.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
