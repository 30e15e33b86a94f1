"""The lifecycle-stream reader: applies workers' events to job rows.

Reads `RedisKeys.events_stream` with the consumer group `job-service` (one consumer per process,
`<hostname>-<pid>`), applies each batch in ONE transaction and a constant number of statements
(lock the affected jobs, run the state machine in Python, one executemany UPDATE, one multi-row
INSERT of history), commits, then XACKs and XDELs the entries in one pipeline so the stream
stays bounded. Entries a dead reader left pending are taken over with XAUTOCLAIM.

Nothing is lost or applied twice: an entry is acknowledged only after its batch committed, and
re-applying one (a crash between commit and ack) changes nothing because the state machine is
idempotent and history is unique per (job, attempt, type)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conveyor_common import limits, metrics, tracing
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.statuses import JobStatus
from job_service.background import BackgroundLoop, backoff_delay
from job_service.clock import utcnow
from job_service.db import autocommit_sessionmaker
from job_service.jobs.repository import JobRepository
from job_service.jobs.retry_policy import RetryPolicy
from job_service.jobs.state_cache import CachedJob, StateCache
from job_service.jobs.state_machine import JobState, apply_event
from job_service.metrics import EVENTS_APPLIED, JOB_QUEUE_WAIT

log = structlog.get_logger("job_service.events")

StreamEntry = tuple[Any, Any]  # (entry id, fields or None for an entry deleted meanwhile)
T = TypeVar("T")

# Attempts are stored as 32-bit integers.
_MAX_ATTEMPT = 2**31 - 1
# Consumers with nothing pending and idle this long are removed from the group.
_DEAD_CONSUMER_IDLE_MS = 3_600_000
# Optimistic rounds (EventApplier) before the events of jobs that kept changing under them are
# applied under locks. A round is lost only to a concurrent write to the same job.
_OPTIMISTIC_ROUNDS = 3
# The events that end an attempt: the ones traced when applied.
_OUTCOME_EVENTS = frozenset({EventType.SUCCEEDED, EventType.FAILED})


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class _Outcome:
    """Metric observations of one batch (by job), recorded only after it committed."""

    started: list[tuple[uuid.UUID, str, str, float | None]] = field(default_factory=list)
    finished: list[tuple[uuid.UUID, str, str, str]] = field(default_factory=list)
    applied: Counter[uuid.UUID] = field(default_factory=Counter)
    # Outcome events (succeeded, failed) that changed their job, with its new status: each gets
    # a span in the job's trace once the batch committed (tracing on only).
    traced: list[tuple[LifecycleEvent, JobStatus]] = field(default_factory=list)

    def only(self, job_ids: set[uuid.UUID]) -> _Outcome:
        """The observations of these jobs (the ones a batch actually wrote)."""
        return _Outcome(
            started=[item for item in self.started if item[0] in job_ids],
            finished=[item for item in self.finished if item[0] in job_ids],
            applied=Counter({k: n for k, n in self.applied.items() if k in job_ids}),
            traced=[item for item in self.traced if item[0].job_id in job_ids],
        )

    def record(self) -> None:
        # One label look-up per label set, not per job: a batch holds hundreds of jobs of a
        # few tasks, and `labels()` costs more than the increment.
        for (task, queue), n in Counter(
            (task, queue) for _, task, queue, _ in self.started
        ).items():
            metrics.JOBS_STARTED.labels(task, queue).inc(n)
        waits: dict[tuple[str, str], list[float]] = {}
        for _, task, queue, wait in self.started:
            if wait is not None:
                waits.setdefault((task, queue), []).append(max(wait, 0.0))
        for (task, queue), observed in waits.items():
            histogram = JOB_QUEUE_WAIT.labels(task, queue)
            for wait in observed:
                histogram.observe(wait)
        # Run time is the workers' metric (conveyor_job_run_duration_seconds): no name is
        # exported by two services, so a sum across them never counts an attempt twice.
        for (_, task, queue, status), n in Counter(self.finished).items():
            metrics.JOBS_FINISHED.labels(task, queue, status).inc(n)
        EVENTS_APPLIED.inc(sum(self.applied.values()))


class EventReader(BackgroundLoop):
    name = "event-reader"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        keys: RedisKeys,
        *,
        consumer: str | None = None,
        batch_size: int = 500,
        block_ms: int = 1_000,
        linger_ms: int = 0,
        claim_idle_ms: int = 30_000,
        claim_interval_seconds: float = 10.0,
        backoff_max_seconds: float = 5.0,
        applier: EventApplier | None = None,
    ) -> None:
        super().__init__()
        self._applier = applier or EventApplier(sessionmaker)
        self._redis = redis
        self._stream = keys.events_stream
        self._group = keys.events_group
        self.consumer = consumer or consumer_name()
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._linger = linger_ms / 1000
        self._claim_idle_ms = claim_idle_ms
        self._claim_interval = claim_interval_seconds
        self._backoff_max = backoff_max_seconds

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        # Our own pending entries first: a batch whose apply failed is retried before new ones.
        pending_first = True
        next_claim = 0.0
        group_ready = False
        while not self.stopping:
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                if time.monotonic() >= next_claim:
                    await self.reclaim_once()
                    next_claim = time.monotonic() + self._claim_interval
                if pending_first:
                    pending_first = await self.read_once(pending=True) > 0
                else:
                    await self.read_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # Redis lost the stream and its group (restarted without its data): make
                    # them again. Events appended since are read from the start ("0").
                    group_ready = False
                    log.warning("events.group_lost", stream=self._stream, group=self._group)
                failures += 1
                pending_first = True
                delay = backoff_delay(failures, cap=self._backoff_max)
                log.warning(
                    "events.read_failed",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    failures=failures,
                    retry_in=round(delay, 2),
                )
                await self.sleep(delay)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_once(self, *, pending: bool = False, block_ms: int | None = None) -> int:
        """Reads and applies one batch: new entries (blocking up to `block_ms`), or with
        `pending` this consumer's own unacknowledged ones. Returns how many it handled."""
        response = await self._until_stopped(
            self._xreadgroup(
                "0" if pending else ">",
                block=None if pending else (self._block_ms if block_ms is None else block_ms),
            )
        )
        if not response:
            return 0
        entries = _entries_of(response)
        if not pending and self._linger > 0 and len(entries) < self._batch_size:
            entries += await self._linger_for_more(self._batch_size - len(entries))
        await self.apply_entries(entries)
        return len(entries)

    async def _linger_for_more(self, room: int) -> list[StreamEntry]:
        """Waits `linger_ms` and takes what arrived meanwhile (without blocking again). While
        workers report steadily, events trickle in a few at a time: applying each trickle as
        its own transaction costs 4 PostgreSQL round trips per handful of events, so a short
        wait buys batches many times larger, at the price of that much latency on SUCCEEDED
        becoming visible. A full batch (a backlog) never waits."""
        await self.sleep(self._linger)
        if self.stopping:
            return []
        response = await self._xreadgroup(">", block=None, count=room)
        return _entries_of(response) if response else []

    async def _xreadgroup(self, start: str, *, block: int | None, count: int | None = None) -> Any:
        return await self._redis.xreadgroup(
            self._group,
            self.consumer,
            {self._stream: start},
            count=count or self._batch_size,
            block=block,
        )

    async def reclaim_once(self) -> int:
        """Takes over entries other (dead) consumers left pending longer than the idle limit,
        applies them, and forgets consumers that have been gone for long."""
        handled = 0
        start: Any = "0-0"
        for _ in range(100):  # bounded: at most 100 batches per round
            reply = await self._redis.xautoclaim(
                self._stream,
                self._group,
                self.consumer,
                min_idle_time=self._claim_idle_ms,
                start_id=start,
                count=self._batch_size,
            )
            start, entries = reply[0], list(reply[1])
            if entries:
                log.info("events.reclaimed", entries=len(entries))
                await self.apply_entries(entries)
                handled += len(entries)
            if start in (b"0-0", "0-0") or not entries:
                break
        await self._forget_dead_consumers()
        return handled

    async def _forget_dead_consumers(self) -> None:
        consumers = await self._redis.xinfo_consumers(self._stream, self._group)
        for info in consumers:
            name = info["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            if (
                name != self.consumer
                and int(info.get("pending", 0)) == 0
                and int(info.get("idle", 0)) > _DEAD_CONSUMER_IDLE_MS
            ):
                await self._redis.xgroup_delconsumer(self._stream, self._group, name)

    async def _until_stopped(self, coro: Coroutine[Any, Any, T]) -> T | None:
        """Awaits `coro` unless a stop is requested first (a blocking read can take a second)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task in done:
            return task.result()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return None

    # --- applying -------------------------------------------------------------------------

    async def apply_entries(self, entries: Sequence[StreamEntry]) -> None:
        """Applies a batch of stream entries, then acknowledges and deletes them."""
        events: list[LifecycleEvent] = []
        for entry_id, fields in entries:
            try:
                event = LifecycleEvent.from_stream_fields(fields or {})
                if event.attempt > _MAX_ATTEMPT:
                    raise ValueError("attempt out of range")
                events.append(event)
            except (ValidationError, ValueError) as exc:
                # A malformed entry can never succeed; acknowledging it keeps the stream moving.
                log.error("events.unparseable", entry_id=_text(entry_id), error=type(exc).__name__)
        if events:
            try:
                await self.apply_events(events)
            except (DataError, IntegrityError) as exc:
                # Not transient: some event in the batch can never be stored. Apply the events one
                # by one so that one poison entry can't hold back the whole stream.
                log.error("events.batch_rejected", events=len(events), error=type(exc).__name__)
                await self._apply_one_by_one(events)
        ids = [entry_id for entry_id, _ in entries]
        if ids:
            pipe = self._redis.pipeline(transaction=False)
            pipe.xack(self._stream, self._group, *ids)
            pipe.xdel(self._stream, *ids)
            await pipe.execute()

    async def _apply_one_by_one(self, events: Sequence[LifecycleEvent]) -> None:
        for event in events:
            try:
                await self.apply_events([event])
            except (DataError, IntegrityError) as exc:
                log.error(
                    "events.dropped",
                    job_id=str(event.job_id),
                    attempt=event.attempt,
                    type=event.type.value,
                    error=type(exc).__name__,
                )

    async def apply_events(self, events: Sequence[LifecycleEvent]) -> None:
        await self._applier.apply(events)


class EventApplier:
    """Applies lifecycle events to job rows through the state machine. Used by the stream
    reader and by the reconciler (for the outcomes it reads back from the result backend), so
    both follow the same rules.

    On PostgreSQL optimistically, in two statements and no explicit transaction (two round
    trips per batch instead of four): read the jobs' state, decide in Python, then one
    statement writes each job's new state and history only where its row still holds the
    status, attempts and cycle the decision was made from (`record_states_if_unchanged`). Jobs
    that another writer (the relay, a cancel, another replica) changed meanwhile are decided
    again from their new state; after a few such rounds, or on SQLite, the remaining events
    are applied the pessimistic way: one transaction that locks the jobs, decides, writes."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = utcnow,
        state_cache: StateCache | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._jitter = jitter
        self._clock = clock
        self._unlocked = autocommit_sessionmaker(sessionmaker)
        self._cache = state_cache if self._unlocked is not None else None

    async def apply(self, events: Sequence[LifecycleEvent]) -> None:
        """Applies events (in the given order: within a job, in order)."""
        pending = list(events)
        if not pending:
            return
        if self._unlocked is not None:
            for round_ in range(_OPTIMISTIC_ROUNDS):
                # Only the first round may trust the cache: a job left over was stale in it.
                pending = await self._apply_unlocked(pending, cached=round_ == 0)
                if not pending:
                    return
        if self._cache is not None:
            self._cache.forget(_job_ids(pending))
        await self._apply_locked(pending)

    async def _apply_unlocked(
        self, events: list[LifecycleEvent], *, cached: bool
    ) -> list[LifecycleEvent]:
        """One optimistic round; returns the events of the jobs it could not write."""
        assert self._unlocked is not None
        now = self._clock()
        started_ns = time.time_ns() if tracing.enabled() else 0
        async with self._unlocked() as session:
            repository = JobRepository.from_session(session)
            rows: dict[uuid.UUID, Any] = {}
            missing = _job_ids(events)
            if cached and self._cache is not None:
                rows, missing = self._cache.lookup(missing)
            if missing:
                rows.update((row.id, row) for row in await repository.read_states(missing))
            decision = self._decide(events, rows, now, trace=bool(started_ns))
            guards = [
                (job_id, row.status, row.attempts, row.cycle, job_id in decision.changed)
                for job_id, row in rows.items()
            ]
            written = await repository.record_states_if_unchanged(
                guards, decision.updates(now), decision.history_rows()
            )
        if self._cache is not None:
            self._cache.forget(rows.keys() - written)
            self._cache.remember(
                CachedJob.from_row(row, **decision.changes(job_id, now))
                for job_id, row in rows.items()
                if job_id in written
            )
        decision.outcome.only(written).record()
        _record_spans(decision.outcome.only(written).traced, started_ns, len(events))
        # Unknown jobs are not retried: they were logged and will stay unknown.
        return [event for event in events if event.job_id in rows.keys() - written]

    async def _apply_locked(self, events: list[LifecycleEvent]) -> None:
        """In one transaction: lock the jobs (in id order, so two appliers can't deadlock),
        decide, one UPDATE and one history INSERT (one statement on PostgreSQL)."""
        now = self._clock()
        started_ns = time.time_ns() if tracing.enabled() else 0
        async with self._sessionmaker() as session, session.begin():
            repository = JobRepository.from_session(session)
            rows = {row.id: row for row in await repository.lock_states(_job_ids(events))}
            decision = self._decide(events, rows, now, trace=bool(started_ns))
            await repository.record_states(decision.updates(now), decision.history_rows())
        decision.outcome.record()
        _record_spans(decision.outcome.traced, started_ns, len(events))

    def _decide(
        self,
        events: Sequence[LifecycleEvent],
        rows: Mapping[uuid.UUID, Any],
        now: datetime,
        *,
        trace: bool,
    ) -> _Decision:
        decision = _Decision({job_id: _state_of(row) for job_id, row in rows.items()})
        for raw_event in events:
            event = _normalized(raw_event)
            row = rows.get(event.job_id)
            if row is None or row.tenant_id != event.tenant_id:
                log.warning(
                    "events.unknown_job", job_id=str(event.job_id), tenant_id=event.tenant_id
                )
                continue
            decision.history.setdefault(
                (event.job_id, event.attempt, event.type.value),
                _history_row(event, row.cycle, now),
            )
            before = decision.states[event.job_id]
            after = apply_event(before, event, jitter=self._jitter())
            decision.outcome.applied[event.job_id] += 1
            if after is None:
                continue
            decision.states[event.job_id] = after
            decision.changed.add(event.job_id)
            _observe(decision.outcome, row, before, after, event)
            if trace and event.traceparent and event.type in _OUTCOME_EVENTS:
                decision.outcome.traced.append((event, after.status))
        return decision


@dataclass
class _Decision:
    """What a batch of events does to the jobs it was decided on."""

    states: dict[uuid.UUID, JobState]
    changed: set[uuid.UUID] = field(default_factory=set)
    history: dict[tuple[uuid.UUID, int, str], dict[str, Any]] = field(default_factory=dict)
    outcome: _Outcome = field(default_factory=_Outcome)

    def updates(self, now: datetime) -> list[dict[str, Any]]:
        return [_update_params(job_id, self.states[job_id], now) for job_id in sorted(self.changed)]

    def history_rows(self) -> list[dict[str, Any]]:
        return list(self.history.values())

    def changes(self, job_id: uuid.UUID, now: datetime) -> dict[str, Any]:
        """A written job's new state columns (none when its events changed nothing)."""
        if job_id not in self.changed:
            return {}
        params = _update_params(job_id, self.states[job_id], now)
        return {
            key.removeprefix("b_"): value
            for key, value in params.items()
            if key not in ("b_id", "b_updated_at")
        }


def _job_ids(events: Sequence[LifecycleEvent]) -> list[uuid.UUID]:
    return sorted({event.job_id for event in events})


def _record_spans(
    traced: Sequence[tuple[LifecycleEvent, JobStatus]], start_ns: int, batch_size: int
) -> None:
    """One span per outcome event, the child of the worker's task-run span: the trace of a job
    ends where job-service recorded how its attempt went. Its time is the whole batch's."""
    if not traced:
        return
    end_ns = time.time_ns()
    for event, status in traced:
        tracing.record_span(
            f"events.apply {event.type.value}",
            start_ns=start_ns,
            end_ns=end_ns,
            traceparent=event.traceparent,
            kind=tracing.SpanKind.CONSUMER,
            attributes={
                "conveyor.job.id": str(event.job_id),
                "conveyor.attempt": event.attempt,
                "conveyor.job.status": status.value,
                "conveyor.events_batch_size": batch_size,
            },
        )


def _state_of(row: Any) -> JobState:
    return JobState(
        status=JobStatus(row.status),
        attempts=row.attempts,
        policy=RetryPolicy(
            max_attempts=row.max_attempts,
            backoff_seconds=row.retry_backoff_seconds,
            backoff_max_seconds=row.retry_backoff_max_seconds,
            jitter=row.retry_jitter,
        ),
        prior_attempts=row.prior_attempts,
        started_at=row.started_at,
        finished_at=row.finished_at,
        next_attempt_at=row.next_attempt_at,
        error_type=row.error_type,
        error_message=row.error_message,
        traceback=row.traceback,
    )


def _update_params(job_id: uuid.UUID, state: JobState, now: datetime) -> dict[str, Any]:
    return {
        "b_id": job_id,
        "b_status": state.status,
        "b_attempts": state.attempts,
        "b_started_at": state.started_at,
        "b_finished_at": state.finished_at,
        "b_next_attempt_at": state.next_attempt_at,
        "b_error_type": state.error_type,
        "b_error_message": state.error_message,
        "b_traceback": state.traceback,
        "b_updated_at": now,
    }


def _history_row(event: LifecycleEvent, cycle: int, now: datetime) -> dict[str, Any]:
    return {
        "job_id": event.job_id,
        "tenant_id": event.tenant_id,
        "attempt": event.attempt,
        "cycle": cycle,
        "type": event.type.value,
        "at": event.at,
        "worker": event.worker,
        "duration_ms": event.duration_ms,
        "error_type": event.error_type,
        "error_message": event.error_message,
        "recorded_at": now,
    }


def _observe(
    outcome: _Outcome, row: Any, before: JobState, after: JobState, event: LifecycleEvent
) -> None:
    if after.status == JobStatus.RUNNING and before.status != JobStatus.RUNNING:
        wait = (event.at - row.queued_at).total_seconds() if row.queued_at else None
        outcome.started.append((row.id, row.task, metrics.queue_label(row.queue), wait))
    if after.status.is_final:
        outcome.finished.append(
            (row.id, row.task, metrics.queue_label(row.queue), after.status.value)
        )


def _normalized(event: LifecycleEvent) -> LifecycleEvent:
    """Naive timestamps are taken as UTC; free-text fields are cut to their column sizes."""
    update: dict[str, Any] = {}
    if event.at.tzinfo is None:
        update["at"] = event.at.replace(tzinfo=UTC)
    if event.worker is not None and len(event.worker) > limits.MAX_NAME_LENGTH:
        update["worker"] = event.worker[: limits.MAX_NAME_LENGTH]
    return event.model_copy(update=update) if update else event


def _entries_of(response: Any) -> list[StreamEntry]:
    # RESP2 answers [[stream, entries]]; RESP3 {stream: entries}.
    return list(next(iter(response.values())) if isinstance(response, dict) else response[0][1])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
