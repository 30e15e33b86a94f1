"""The outbox relay: publishes committed jobs to their Celery queues in Redis.

Woken right after every submit commits, and sweeping on a timer for anything missed (Redis
down, a crash between commit and publish). One round, in ONE transaction: lock up to a batch of
outbox rows with their jobs (`FOR UPDATE SKIP LOCKED`, so several replicas share the work),
mark the jobs QUEUED with the next attempt number, LPUSH all their pre-built Celery messages in
one Redis pipeline (one LPUSH per list, of many messages), delete the outbox rows, commit.

What an outbox row asks for depends on its job's status when the relay takes it:
- PENDING: publish the next attempt (the job becomes QUEUED with `attempts + 1`); a job in a
  new cycle (a retry or replay) first has its Redis cancel key deleted;
- QUEUED: re-publish the current attempt (the reconciler found its message lost);
- CANCELLED: write the job's Redis cancel key, so workers skip or stop it;
- anything else: nothing (the row is just deleted).

Why this order: the job rows hold the new attempt number (and are locked) before any worker can
see the message, so a lifecycle event for the new attempt is never judged against the old one.
If the publish fails the transaction rolls back and the rows wait for the next round; if the
commit fails after a publish, the job is published again later — at-least-once, and the
worker's attempt fence turns the copy into a skip.

Priorities: Conveyor's 9 is the most urgent, kombu's Redis transport serves its LOWEST priority
first, so the message goes to the list of `kombu_priority(job.priority)` (see
`conveyor_common.messages`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conveyor_common import limits
from conveyor_common.envelope import TaskEnvelope
from conveyor_common.messages import build_task_message, kombu_priority, queue_key
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.statuses import JobStatus
from job_service.background import BackgroundLoop, backoff_delay
from job_service.clock import utcnow
from job_service.db import autocommit_sessionmaker
from job_service.jobs.repository import JobRepository
from job_service.jobs.state_cache import CachedJob, StateCache
from job_service.jobs.time_limits import TimeLimits
from job_service.metrics import OUTBOX_PUBLISHED

log = structlog.get_logger("job_service.outbox")


class OutboxRelay(BackgroundLoop):
    name = "outbox-relay"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        keys: RedisKeys,
        *,
        batch_size: int = 1_000,
        sweep_seconds: float = 1.0,
        backoff_max_seconds: float = 5.0,
        time_limits: TimeLimits | None = None,
        clock: Callable[[], datetime] = utcnow,
        state_cache: StateCache | None = None,
    ) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._keys = keys
        self._batch_size = batch_size
        self._sweep_seconds = sweep_seconds
        self._backoff_max = backoff_max_seconds
        self._limits = time_limits or TimeLimits.derive(
            max_timeout_seconds=limits.MAX_TIMEOUT_SECONDS, grace_seconds=30
        )
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._autocommit = autocommit_sessionmaker(sessionmaker)
        self._state_cache = state_cache

    def wake(self) -> None:
        """Called after a commit that added outbox rows."""
        self._wakeup.set()

    def request_stop(self) -> None:
        super().request_stop()
        self._wakeup.set()

    async def run(self) -> None:
        failures = 0
        woken = True
        while not self.stopping:
            try:
                if woken or await self._anything_to_publish():
                    while await self.publish_once() >= self._batch_size and not self.stopping:
                        pass  # a full batch: there may be more right away
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = backoff_delay(failures, cap=self._backoff_max)
                log.warning(
                    "outbox.publish_failed",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    failures=failures,
                    retry_in=round(delay, 2),
                )
                await self.sleep(delay)
                woken = True
                continue
            woken = await self._wait_for_work()

    async def _wait_for_work(self) -> bool:
        """True when woken by a commit, False when the sweep interval passed."""
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=self._sweep_seconds)
        except TimeoutError:
            return False
        finally:
            self._wakeup.clear()
        return True

    async def _anything_to_publish(self) -> bool:
        """A sweep's look at the outbox: one round trip where a publishing round that finds
        nothing costs three (BEGIN, the locking SELECT, COMMIT)."""
        if self._autocommit is None:
            return True
        async with self._autocommit() as session:
            return await JobRepository.from_session(session).any_outbox()

    async def publish_once(self) -> int:
        """One round; returns how many outbox rows it consumed."""
        async with self._sessionmaker() as session, session.begin():
            repository = JobRepository.from_session(session)
            rows = await repository.claim_outbox(self._batch_size)
            if not rows:
                return 0
            now = self._clock()
            # One action per job, however many outbox rows it has.
            jobs = list({row.id: row for row in rows}.values())
            new_attempts = [row for row in jobs if row.status == JobStatus.PENDING]
            republished = [row for row in jobs if row.status == JobStatus.QUEUED]
            cancelled = [row for row in jobs if row.status == JobStatus.CANCELLED]
            await repository.mark_queued([row.id for row in new_attempts], now)
            if new_attempts or republished or cancelled:
                await self._publish(new_attempts, republished, cancelled)
            await repository.delete_outbox([row.outbox_id for row in rows])
        if self._state_cache is not None:
            # Committed: the event applier can decide these jobs' first events without reading.
            self._state_cache.forget([row.id for row in cancelled])
            self._state_cache.remember(
                [
                    *(
                        CachedJob.from_row(
                            row,
                            status=JobStatus.QUEUED,
                            attempts=row.attempts + 1,
                            queued_at=now,
                        )
                        for row in new_attempts
                    ),
                    *(CachedJob.from_row(row) for row in republished),
                ]
            )
        OUTBOX_PUBLISHED.inc(len(new_attempts) + len(republished))
        log.debug(
            "outbox.published",
            jobs=len(new_attempts),
            republished=len(republished),
            cancel_keys=len(cancelled),
            rows=len(rows),
        )
        return len(rows)

    async def _publish(
        self, new_attempts: Sequence[Any], republished: Sequence[Any], cancelled: Sequence[Any]
    ) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for row in cancelled:
            pipe.set(self._keys.cancel(str(row.id)), "1", ex=self._limits.marker_ttl_seconds)
        lists: dict[str, list[str]] = {}
        for row in new_attempts:
            if row.cycle > 1:
                # A retried or replayed job may have been cancelled: without this its new
                # attempts would be skipped as cancelled. Queued before the LPUSH, so no worker
                # can see the message while the key still exists.
                pipe.delete(self._keys.cancel(str(row.id)))
            self._push(lists, row, attempt=row.attempts + 1)
        for row in republished:
            self._push(lists, row, attempt=row.attempts)
        for key, messages in lists.items():
            # One LPUSH of many values leaves the list as one LPUSH per value in that order
            # would, at a fraction of the cost of a command (and a reply) per message.
            pipe.lpush(key, *messages)
        await pipe.execute()

    def _push(self, lists: dict[str, list[str]], row: Any, *, attempt: int) -> None:
        envelope = TaskEnvelope(
            job_id=row.id,
            tenant_id=row.tenant_id,
            task=row.task,
            attempt=attempt,
            args=row.args,
            queue=row.queue,
            timeout_seconds=row.timeout_seconds,
            idempotency_key=row.idempotency_key,
            # The submit span's context, the same for every attempt: one trace per job.
            traceparent=row.traceparent,
        )
        message = build_task_message(
            envelope,
            soft_time_limit=self._limits.soft(row.timeout_seconds),
            time_limit=self._limits.hard(row.timeout_seconds),
        )
        key = queue_key(row.queue, kombu_priority(row.priority))
        lists.setdefault(self._keys.queue(key), []).append(message)
