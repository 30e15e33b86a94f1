"""The operator gauges on job-service's `/metrics`, refreshed every few seconds.

Each round costs a handful of cheap reads: one grouped count of the non-final jobs, one count
of the outbox, one of the dead letters, and XLEN, XPENDING and a SCAN of worker keys in Redis.
Every replica refreshes its own copy from the same stores, so all export the same values (a
dashboard takes their max()). A gauge whose source can't be read keeps its last value until the
next round succeeds."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conveyor_common import metrics
from conveyor_common.celery_app import DEFAULT_QUEUE
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.statuses import FINAL_STATUSES, JobStatus
from job_service.background import BackgroundLoop, backoff_delay
from job_service.clock import utcnow
from job_service.dead_letters.repository import DeadLetterRepository
from job_service.jobs.repository import JobRepository
from job_service.metrics import (
    DEAD_LETTERS,
    EVENTS_PENDING,
    EVENTS_STREAM_LENGTH,
    JOBS_BACKLOG,
    OUTBOX_LAG,
    OUTBOX_PENDING,
    WORKERS,
)

log = structlog.get_logger("job_service.gauges")

NON_FINAL = tuple(status.value for status in JobStatus if status not in FINAL_STATUSES)


class GaugeCollector(BackgroundLoop):
    name = "gauges"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        keys: RedisKeys,
        *,
        interval_seconds: float = 5.0,
        backoff_max_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._keys = keys
        self._interval = interval_seconds
        self._backoff_max = backoff_max_seconds
        self._clock = clock
        # Every (queue, status) ever exported, so one that empties reads 0 instead of vanishing.
        self._backlog_labels: set[tuple[str, str]] = {(DEFAULT_QUEUE, s) for s in NON_FINAL}
        for queue, status in self._backlog_labels:
            JOBS_BACKLOG.labels(queue, status)

    async def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                await self.collect_once()
                failures = 0
                delay = self._interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = max(self._interval, backoff_delay(failures, cap=self._backoff_max))
                log.warning(
                    "gauges.refresh_failed",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    failures=failures,
                    retry_in=round(delay, 2),
                )
            await self.sleep(delay)

    async def collect_once(self) -> None:
        await self._collect_database()
        await self._collect_redis()

    async def _collect_database(self) -> None:
        async with self._sessionmaker() as session:
            jobs = JobRepository.from_session(session)
            backlog = _by_queue_label(await jobs.backlog())
            outbox_rows, oldest = await jobs.outbox_stats()
            dead_letters = await DeadLetterRepository.from_session(session).count_all()
        self._backlog_labels |= backlog.keys()
        for queue, status in self._backlog_labels:
            JOBS_BACKLOG.labels(queue, status).set(backlog.get((queue, status), 0))
        OUTBOX_PENDING.set(outbox_rows)
        lag = 0.0 if oldest is None else (self._clock() - oldest).total_seconds()
        OUTBOX_LAG.set(max(lag, 0.0))
        DEAD_LETTERS.set(dead_letters)

    async def _collect_redis(self) -> None:
        stream, group = self._keys.events_stream, self._keys.events_group
        EVENTS_STREAM_LENGTH.set(await self._redis.xlen(stream))
        try:
            summary = await self._redis.xpending(stream, group)
            pending = int(summary["pending"])
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            pending = 0  # no group yet (or Redis lost it): nothing is pending
        EVENTS_PENDING.set(pending)
        workers = 0
        async for _ in self._redis.scan_iter(match=f"{self._keys.workers}*", count=1_000):
            workers += 1
        WORKERS.set(workers)


def _by_queue_label(backlog: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """The backlog under the queues' metric labels: queues past the label cap add up under
    `OTHER_QUEUE` (conveyor_common.metrics)."""
    labelled: Counter[tuple[str, str]] = Counter()
    for (queue, status), n in backlog.items():
        labelled[(metrics.queue_label(queue), status)] += n
    return dict(labelled)
