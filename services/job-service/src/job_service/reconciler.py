"""The reconciler: closes the gaps Redis leaves, from PostgreSQL's side, every few seconds.

Redis may lose anything at any moment (a restart without its data, a failover, a killed
worker's unacked message waiting out the visibility timeout). Each round:

1. **Lost messages.** QUEUED jobs published more than `queued_republish_seconds` ago that no
   worker reported receiving are compared with their queue's Redis lists: when the lists hold
   fewer messages than the queue's waiting jobs, the difference has been lost, and the oldest
   stale jobs get an outbox row that makes the relay publish their current attempt again. (A
   long backlog is not a loss: its messages are all still listed, so nothing is re-published
   and the queue is not doubled.) One replica does this per round (a PostgreSQL advisory lock;
   rows are locked SKIP LOCKED too); a copy published anyway is skipped by the worker's fence.
2. **Lost attempts.** Jobs whose attempt a worker started (RUNNING, or QUEUED with a `received`)
   more than one lease TTL ago and whose lease key (`RedisKeys.lease`) has been missing for a
   whole TTL — a live worker renews it every TTL/3, so it is not coming back — are judged by
   the result backend: a SUCCESS stored by this attempt → succeeded; a FAILURE stored since the
   attempt started (Celery's own `TimeLimitExceeded` record included) → failed with that error;
   nothing → failed with `WorkerLost`. The verdict goes through the same state machine as the
   workers' events (`events.EventApplier`), so the retry policy decides what follows, and a
   verdict that lost a race with the real event changes nothing.
3. Outbox rows that were never published are swept by the relay itself.

Every action is logged (`reconciler.republished`, `reconciler.worker_lost`, ...) and counted in
`conveyor_reconciler_actions_total{action}`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conveyor_common import limits
from conveyor_common.events import EventType, LifecycleEvent, truncate
from conveyor_common.messages import priority_queue_keys
from conveyor_common.redis_keys import RedisKeys
from job_service.background import BackgroundLoop, backoff_delay
from job_service.clock import utcnow
from job_service.events import EventApplier
from job_service.jobs.history import Action, history_row
from job_service.jobs.repository import JobRepository
from job_service.jobs.retry_policy import WORKER_LOST
from job_service.metrics import RECONCILER_ACTIONS

log = structlog.get_logger("job_service.reconciler")

# pg_try_advisory_xact_lock key of the lost-message check ("conveyor" in ASCII, truncated).
_REPUBLISH_LOCK = 0x636F6E7665796F
# The result record of Celery's exception wrapper for a failed Conveyor task.
_TASK_FAILURE = "TaskFailure"


class Verdict:
    """Actions, as counted in `conveyor_reconciler_actions_total{action}`."""

    REPUBLISHED = "republished"
    SUCCEEDED = "succeeded_from_result"
    FAILED = "failed_from_result"
    WORKER_LOST = "worker_lost"

    ALL = (REPUBLISHED, SUCCEEDED, FAILED, WORKER_LOST)


@dataclass(frozen=True, slots=True)
class RoundReport:
    republished: int = 0
    judged: int = 0


class Reconciler(BackgroundLoop):
    name = "reconciler"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        keys: RedisKeys,
        *,
        applier: EventApplier,
        on_republished: Callable[[], None] = lambda: None,
        interval_seconds: float = 5.0,
        queued_republish_seconds: float = 300.0,
        lease_ttl_seconds: float = 30.0,
        batch_size: int = 500,
        backoff_max_seconds: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker
        self._redis = redis
        self._keys = keys
        self._applier = applier
        self._on_republished = on_republished
        self._interval = interval_seconds
        self._republish_after = timedelta(seconds=queued_republish_seconds)
        self._lease_ttl = lease_ttl_seconds
        self._batch_size = batch_size
        self._backoff_max = backoff_max_seconds
        self._clock = clock
        self._monotonic = monotonic
        # (job id, attempt) -> when this replica first saw its lease missing.
        self._missing_since: dict[tuple[uuid.UUID, int], float] = {}
        for action in Verdict.ALL:
            RECONCILER_ACTIONS.labels(action)  # exported at 0 before the first action

    async def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                await self.reconcile_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = backoff_delay(failures, cap=self._backoff_max)
                log.warning(
                    "reconciler.round_failed",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    failures=failures,
                    retry_in=round(delay, 2),
                )
                await self.sleep(delay)
                continue
            await self.sleep(self._interval)

    async def reconcile_once(self) -> RoundReport:
        republished = await self.republish_lost()
        judged = await self.judge_expired_leases()
        return RoundReport(republished=republished, judged=judged)

    # --- 1. lost messages -----------------------------------------------------------------

    async def republish_lost(self) -> int:
        """Re-publishes (through the outbox) QUEUED jobs whose message Redis lost."""
        async with self._sessionmaker() as session, session.begin():
            if not await _lead(session):
                return 0
            repository = JobRepository.from_session(session)
            now = self._clock()
            stale = await repository.lock_stale_queued(
                now - self._republish_after, self._batch_size
            )
            if not stale:
                return 0
            queues = sorted({row.queue for row in stale})
            waiting = await repository.count_waiting(queues)
            listed = await self._listed(queues)
            lost: list[Any] = []
            for queue in queues:
                missing = waiting.get(queue, 0) - listed[queue]
                if missing > 0:
                    # Lists are FIFO: what a restart lost is older than anything listed since.
                    lost.extend([row for row in stale if row.queue == queue][:missing])
            if not lost:
                return 0
            await repository.replace_outbox(
                [{"id": row.id, "tenant_id": row.tenant_id} for row in lost], now
            )
            await repository.mark_requeued([row.id for row in lost], now)
            await repository.insert_events(
                [
                    history_row(
                        job_id=row.id,
                        tenant_id=row.tenant_id,
                        attempt=row.attempts,
                        cycle=row.cycle,
                        action=Action.REPUBLISHED,
                        at=now,
                        detail="message lost from Redis; attempt published again",
                    )
                    for row in lost
                ]
            )
        for row in lost:
            log.info(
                "reconciler.republished", job_id=str(row.id), attempt=row.attempts, queue=row.queue
            )
        RECONCILER_ACTIONS.labels(Verdict.REPUBLISHED).inc(len(lost))
        self._on_republished()
        return len(lost)

    async def _listed(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages in each queue's Redis lists (every priority step)."""
        pipe = self._redis.pipeline(transaction=False)
        for queue in queues:
            for key in priority_queue_keys(queue):
                pipe.llen(self._keys.queue(key))
        lengths = await pipe.execute()
        steps = len(priority_queue_keys(""))
        return {
            queue: sum(int(n) for n in lengths[i * steps : (i + 1) * steps])
            for i, queue in enumerate(queues)
        }

    # --- 2. lost attempts -----------------------------------------------------------------

    async def judge_expired_leases(self) -> int:
        """Applies a verdict to each started attempt whose lease has been gone for a whole TTL."""
        now = self._clock()
        cutoff = now - timedelta(seconds=self._lease_ttl)
        suspects: list[Any] = []
        current: set[tuple[uuid.UUID, int]] = set()
        after_id: uuid.UUID | None = None
        # Every started attempt, page by page: their number is bounded by the workers' slots.
        while True:
            async with self._sessionmaker() as session:
                rows = await JobRepository.from_session(session).running_since(
                    cutoff, self._batch_size, after_id
                )
            if not rows:
                break
            suspects.extend(await self._missing_leases(rows, current))
            if len(rows) < self._batch_size:
                break
            after_id = rows[-1].id
        self._missing_since = {k: v for k, v in self._missing_since.items() if k in current}
        if not suspects:
            return 0

        pipe = self._redis.pipeline(transaction=False)
        for row in suspects:
            pipe.get(self._keys.result(str(row.id)))
        records = await pipe.execute()
        verdicts = [
            _verdict(row, record, now) for row, record in zip(suspects, records, strict=True)
        ]
        await self._applier.apply([event for event, _ in verdicts])
        for row, (event, action) in zip(suspects, verdicts, strict=True):
            self._missing_since.pop((row.id, row.attempts), None)
            log.info(
                f"reconciler.{action}",
                job_id=str(row.id),
                attempt=row.attempts,
                task=row.task,
                error_type=event.error_type,
            )
            RECONCILER_ACTIONS.labels(action).inc()
        return len(suspects)

    async def _missing_leases(
        self, rows: Sequence[Any], current: set[tuple[uuid.UUID, int]]
    ) -> list[Any]:
        """The rows whose lease has now been missing for a whole TTL (one MGET)."""
        leases = await self._redis.mget([self._keys.lease(str(row.id)) for row in rows])
        seen = self._monotonic()
        suspects = []
        for row, lease in zip(rows, leases, strict=True):
            key = (row.id, row.attempts)
            current.add(key)
            if _lease_holds(lease, row.attempts):
                self._missing_since.pop(key, None)
                continue
            first_seen = self._missing_since.setdefault(key, seen)
            if seen - first_seen >= self._lease_ttl:
                suspects.append(row)
        return suspects


async def _lead(session: AsyncSession) -> bool:
    """True when this replica may run the lost-message check this round (PostgreSQL: a
    transaction-scoped advisory lock; SQLite serialises writers anyway)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    locked = await session.scalar(select(func.pg_try_advisory_xact_lock(_REPUBLISH_LOCK)))
    return bool(locked)


def _lease_holds(raw: Any, attempt: int) -> bool:
    """A lease `"<attempt>:<worker>"` for this attempt or a newer one means a worker runs it."""
    if raw is None:
        return False
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    head = text.split(":", 1)[0]
    try:
        return int(head) >= attempt
    except ValueError:
        # Not ours to judge: a lease in a shape this version doesn't know still means "alive".
        log.warning("reconciler.unreadable_lease", lease=text[:100])
        return True


def _verdict(row: Any, raw: Any, now: datetime) -> tuple[LifecycleEvent, str]:
    """The event that settles a lost attempt, from its result record (or its absence)."""
    base = {
        "job_id": row.id,
        "tenant_id": row.tenant_id,
        "attempt": row.attempts,
        "task": row.task,
    }
    record = _parse(raw)
    if record is not None:
        status = record.get("status")
        done = _when(record.get("date_done"))
        result = record.get("result")
        if (
            status == "SUCCESS"
            and isinstance(result, dict)
            and result.get("attempt") == row.attempts
            and result.get("tenant_id") in (None, row.tenant_id)
        ):
            event = LifecycleEvent(type=EventType.SUCCEEDED, at=done or now, **base)
            return event, Verdict.SUCCEEDED
        started = row.started_at
        if status == "FAILURE" and (started is None or done is None or done >= started):
            error_type, message = _failure(result)
            event = LifecycleEvent(
                type=EventType.FAILED,
                at=now,
                error_type=truncate(error_type, limits.MAX_NAME_LENGTH),
                error_message=truncate(message, limits.MAX_ERROR_MESSAGE_LENGTH),
                # Unknown from the record: the retry policy judges by the error type.
                retryable=None,
                **base,
            )
            return event, Verdict.FAILED
    event = LifecycleEvent(
        type=EventType.FAILED,
        at=now,
        error_type=WORKER_LOST,
        error_message="the worker stopped renewing the attempt's lease and stored no result",
        retryable=True,
        **base,
    )
    return event, Verdict.WORKER_LOST


def _parse(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _failure(result: Any) -> tuple[str, str]:
    """Error type and message of Celery's exception record: Conveyor's `TaskFailure(tenant,
    error_type, message)`, or any other exception (Celery's `TimeLimitExceeded`)."""
    if not isinstance(result, dict):
        return "Error", ""
    exc_type = str(result.get("exc_type") or "Error")
    args = result.get("exc_message")
    if exc_type == _TASK_FAILURE and isinstance(args, list) and len(args) == 3:
        return str(args[1]), str(args[2])
    if isinstance(args, list):
        return exc_type, " ".join(str(arg) for arg in args)
    return exc_type, "" if args is None else str(args)
