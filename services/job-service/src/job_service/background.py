"""A small base for job-service's background loops (relay, event reader, promoter, reconciler,
gauges, catalog refresher): stop on request (after the current round), sleep in a way a stop
interrupts, back off on errors with a bound."""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    name = "loop"

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        self._stopping.set()

    async def sleep(self, seconds: float) -> None:
        """Sleeps, or returns early when a stop is requested."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(seconds, 0.0))

    @abstractmethod
    async def run(self) -> None: ...


def backoff_delay(failures: int, *, base: float = 0.1, cap: float = 5.0) -> float:
    """Bounded exponential backoff with jitter for retrying a failed round."""
    ceiling = min(cap, base * 2 ** min(failures, 30))
    return float(ceiling / 2 + random.random() * ceiling / 2)
