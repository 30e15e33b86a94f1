"""All SQL about jobs, their outbox rows and their history.

Bulk paths are built so their cost in round trips does not grow with the number of rows. On
PostgreSQL each is one statement with one array parameter per column (`jobs/bulk.py`): a batch
of jobs and their outbox rows is one INSERT, a batch of lifecycle events one UPDATE plus the
history INSERT, and id lists are `= ANY(array)`, so the statement text never depends on the row
count (no new prepared statement per batch size). On SQLite: multi-row INSERTs, an executemany
UPDATE, `IN (...)`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Self, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    TextClause,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common.statuses import FINAL_STATUSES, JobStatus
from job_service.jobs.bulk import ArrayColumns, insert_sql
from job_service.models import Job, JobEvent, OutboxEntry

jobs = cast(Table, Job.__table__)
outbox = cast(Table, OutboxEntry.__table__)
job_events = cast(Table, JobEvent.__table__)

# Columns the relay needs to build a job's Celery message.
_PUBLISH_COLUMNS = (
    jobs.c.id,
    jobs.c.tenant_id,
    jobs.c.task,
    jobs.c.queue,
    jobs.c.priority,
    jobs.c.args,
    jobs.c.status,
    jobs.c.attempts,
    jobs.c.cycle,
    jobs.c.timeout_seconds,
    jobs.c.idempotency_key,
    jobs.c.traceparent,
)

# Columns the event reader needs to run the state machine and label metrics.
STATE_COLUMNS = (
    jobs.c.id,
    jobs.c.tenant_id,
    jobs.c.task,
    jobs.c.queue,
    jobs.c.status,
    jobs.c.attempts,
    jobs.c.max_attempts,
    jobs.c.prior_attempts,
    jobs.c.cycle,
    jobs.c.retry_backoff_seconds,
    jobs.c.retry_backoff_max_seconds,
    jobs.c.retry_jitter,
    jobs.c.queued_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.next_attempt_at,
    jobs.c.error_type,
    jobs.c.error_message,
    jobs.c.traceback,
)

_STATE_UPDATE = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        started_at=bindparam("b_started_at"),
        finished_at=bindparam("b_finished_at"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        error_type=bindparam("b_error_type"),
        error_message=bindparam("b_error_message"),
        traceback=bindparam("b_traceback"),
        updated_at=bindparam("b_updated_at"),
    )
)


_OUTBOX_KEYS = ("job_id", "tenant_id", "created_at")
_EVENT_KEYS = tuple(c.key for c in job_events.c if c.key != "id")
_EVENT_CONFLICT = " ON CONFLICT (job_id, cycle, attempt, type) DO NOTHING"


@cache
def _jobs_with_outbox_sql(job_keys: tuple[str, ...]) -> TextClause:
    """Jobs and their outbox rows in one statement (the outbox rows reference the jobs; the
    foreign key is checked at the end of the statement, when both exist)."""
    return text(
        f"WITH inserted AS ({insert_sql(jobs, job_keys)}) "
        + insert_sql(outbox, _OUTBOX_KEYS, prefix="o")
    )


@cache
def _insert_sql(table: Table, keys: tuple[str, ...], suffix: str = "") -> TextClause:
    return text(insert_sql(table, keys, suffix=suffix))


_STATE_COLUMNS_SET = (
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "error_type",
    "error_message",
    "traceback",
    "updated_at",
)
_STATES = ArrayColumns(jobs, ("id", *_STATE_COLUMNS_SET), "u")
_STATES_AND_HISTORY = text(
    "WITH updated AS (UPDATE jobs SET "
    + ", ".join(f"{name} = s.{name}" for name in _STATE_COLUMNS_SET)
    + f" FROM {_STATES.unnest('s')} WHERE jobs.id = s.id) "
    + insert_sql(job_events, _EVENT_KEYS, prefix="e", suffix=_EVENT_CONFLICT)
)


# The optimistic apply (`record_states_if_unchanged`): every job of the batch with the
# (status, attempts, cycle) its new state was decided from, and whether it changes. A job's new
# state and its history are written only if its row still holds those; the ids written come back.
_GUARDED_STATES_AND_HISTORY = text(
    "WITH g AS (SELECT * FROM unnest(CAST(:g0 AS UUID[]), CAST(:g1 AS VARCHAR(16)[]), "
    "CAST(:g2 AS INTEGER[]), CAST(:g3 AS INTEGER[]), CAST(:g4 AS BOOLEAN[])) "
    "AS g(id, expected_status, expected_attempts, expected_cycle, changed)), "
    "updated AS (UPDATE jobs SET "
    + ", ".join(f"{name} = s.{name}" for name in _STATE_COLUMNS_SET)
    + f" FROM {_STATES.unnest('s')}, g WHERE jobs.id = s.id AND g.id = s.id"
    " AND jobs.status = g.expected_status AND jobs.attempts = g.expected_attempts"
    " AND jobs.cycle = g.expected_cycle RETURNING jobs.id), "
    "kept AS (SELECT jobs.id FROM g JOIN jobs ON jobs.id = g.id WHERE NOT g.changed"
    " AND jobs.status = g.expected_status AND jobs.attempts = g.expected_attempts"
    " AND jobs.cycle = g.expected_cycle), "
    "applied AS (SELECT id FROM updated UNION ALL SELECT id FROM kept), "
    "recorded AS ("
    + insert_sql(
        job_events,
        _EVENT_KEYS,
        prefix="e",
        where=" WHERE r.job_id IN (SELECT id FROM applied)",
        suffix=_EVENT_CONFLICT,
    )
    + ") SELECT id FROM applied"
)


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(jobs.c.status == JobStatus.SCHEDULED, jobs.c.run_at <= now),
        and_(jobs.c.status == JobStatus.RETRYING, jobs.c.next_attempt_at <= now),
    )


def _state_key(column: str) -> str:
    return f"b_{column}"


# What the relay reads of a job: what its message needs, and its state columns, which it hands
# to the event applier's cache (jobs/state_cache.py) once the publish committed.
_CLAIM_COLUMNS = (
    *_PUBLISH_COLUMNS,
    *(c for c in STATE_COLUMNS if c.key not in {p.key for p in _PUBLISH_COLUMNS}),
)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def from_session(cls, session: AsyncSession) -> Self:
        return cls(session)

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    @property
    def _bulk(self) -> bool:
        """Array-parameter statements (`jobs/bulk.py`): PostgreSQL only."""
        return self._dialect == "postgresql"

    def _id_in(self, column: Any, ids: Sequence[Any]) -> ColumnElement[bool]:
        """`column = ANY(:ids)` on PostgreSQL (one statement text for any number of ids),
        `column IN (...)` elsewhere."""
        if self._bulk:
            array = bindparam(None, list(ids), type_=postgresql.ARRAY(column.type))
            return cast(ColumnElement[bool], column == any_(array))
        return cast(ColumnElement[bool], column.in_(list(ids)))

    def _insert(self, table: Any) -> Any:
        """A dialect INSERT, for ON CONFLICT (PostgreSQL and SQLite both have it)."""
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    # --- submission -----------------------------------------------------------------------

    async def insert_jobs(
        self,
        rows: Sequence[Mapping[str, Any]],
        outbox_rows: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Jobs (every row with the same keys) and, in the same statement on PostgreSQL, their
        outbox rows (`job_id`, `tenant_id`, `created_at`)."""
        if not rows:
            await self.insert_outbox(outbox_rows)
            return
        if not self._bulk:
            # RETURNING makes SQLAlchemy batch the rows into multi-row VALUES statements
            # ("insertmanyvalues") instead of one execution per row.
            await self.session.execute(insert(jobs).returning(jobs.c.id), list(rows))
            await self.insert_outbox(outbox_rows)
            return
        keys = tuple(rows[0])
        params = ArrayColumns(jobs, keys, "p").params(rows)
        if not outbox_rows:
            await self.session.execute(_insert_sql(jobs, keys), params)
            return
        params.update(ArrayColumns(outbox, _OUTBOX_KEYS, "o").params(outbox_rows))
        await self.session.execute(_jobs_with_outbox_sql(keys), params)

    async def insert_job_if_absent(self, row: Mapping[str, Any]) -> bool:
        """Inserts unless (tenant_id, idempotency_key) exists; True when inserted."""
        stmt = (
            self._insert(jobs)
            .values(**row)
            .on_conflict_do_nothing(index_elements=[jobs.c.tenant_id, jobs.c.idempotency_key])
            .returning(jobs.c.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def insert_jobs_if_absent(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """`insert_jobs` skipping rows whose (tenant_id, idempotency_key) exists; returns how
        many were inserted. A row that conflicts with one another transaction has not committed
        yet waits for it, so concurrent duplicates are decided by the first commit."""
        if not rows:
            return 0
        stmt = (
            self._insert(jobs)
            .on_conflict_do_nothing(index_elements=[jobs.c.tenant_id, jobs.c.idempotency_key])
            .returning(jobs.c.id)
        )
        return len((await self.session.execute(stmt, list(rows))).all())

    async def insert_outbox(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self._bulk:
            await self.session.execute(
                _insert_sql(outbox, _OUTBOX_KEYS),
                ArrayColumns(outbox, _OUTBOX_KEYS, "p").params(rows),
            )
            return
        await self.session.execute(insert(outbox).returning(outbox.c.id), list(rows))

    # --- reads ----------------------------------------------------------------------------

    async def get(self, tenant_id: str, job_id: uuid.UUID) -> Job | None:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_idempotency_keys(self, tenant_id: str, keys: Sequence[str]) -> list[Job]:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key.in_(keys))
        return list((await self.session.execute(stmt)).scalars())

    async def release_idempotency_keys(
        self, tenant_id: str, keys: Sequence[str], cutoff: datetime
    ) -> int:
        """Clears these keys from the tenant's jobs created at or before `cutoff` (their window
        is over), so the keys can name new jobs; returns how many rows changed. Nothing else of
        the rows changes. On PostgreSQL a row another transaction is releasing is waited for and
        then no longer matches, so of two concurrent reuses only one inserts (the unique index
        turns the other into a replay)."""
        if not keys:
            return 0
        stmt = (
            update(jobs)
            .where(
                jobs.c.tenant_id == tenant_id,
                self._id_in(jobs.c.idempotency_key, keys),
                jobs.c.created_at <= cutoff,
            )
            .values(idempotency_key=None)
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0))

    async def list(
        self,
        tenant_id: str,
        *,
        limit: int,
        before_id: uuid.UUID | None = None,
        status: JobStatus | None = None,
        task: str | None = None,
        queue: str | None = None,
        tag: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Sequence[Job]:
        """Newest first by id (UUIDv7 sorts by creation time): a keyset page after `before_id`."""
        stmt = select(Job).where(Job.tenant_id == tenant_id)
        if before_id is not None:
            stmt = stmt.where(Job.id < before_id)
        if status is not None:
            stmt = stmt.where(Job.status == status)
        if task is not None:
            stmt = stmt.where(Job.task == task)
        if queue is not None:
            stmt = stmt.where(Job.queue == queue)
        if tag is not None:
            stmt = stmt.where(self._has_tag(tag))
        if created_after is not None:
            stmt = stmt.where(Job.created_at > created_after)
        if created_before is not None:
            stmt = stmt.where(Job.created_at < created_before)
        stmt = stmt.order_by(Job.id.desc()).limit(limit)
        return (await self.session.execute(stmt)).scalars().all()

    def _has_tag(self, tag: str) -> ColumnElement[bool]:
        if self._dialect == "postgresql":
            return jobs.c.tags.op("@>")(func.jsonb_build_array(tag))
        each = func.json_each(jobs.c.tags).table_valued("value")
        return exists(select(1).select_from(each).where(each.c.value == tag))

    async def get_for_update(self, tenant_id: str, job_id: uuid.UUID) -> Job | None:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count_outbox(self, job_ids: Sequence[uuid.UUID] | None = None) -> int:
        stmt = select(func.count()).select_from(outbox)
        if job_ids is not None:
            stmt = stmt.where(outbox.c.job_id.in_(list(job_ids)))
        return int((await self.session.execute(stmt)).scalar_one())

    # --- outbox relay ---------------------------------------------------------------------

    async def claim_outbox(self, limit: int) -> Sequence[Any]:
        """Outbox rows with their jobs, locked; rows another relay holds are skipped. (SQLite has
        no row locks: its BEGIN IMMEDIATE transaction already excludes other writers.)"""
        stmt = (
            select(outbox.c.id.label("outbox_id"), *_CLAIM_COLUMNS)
            .join_from(outbox, jobs, outbox.c.job_id == jobs.c.id)
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(stmt)).all()

    async def mark_queued(self, job_ids: Sequence[uuid.UUID], now: datetime) -> int:
        if not job_ids:
            return 0
        stmt = (
            update(jobs)
            .where(self._id_in(jobs.c.id, job_ids), jobs.c.status == JobStatus.PENDING)
            .values(
                status=JobStatus.QUEUED, attempts=jobs.c.attempts + 1, queued_at=now, updated_at=now
            )
        )
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0))

    async def delete_outbox(self, outbox_ids: Sequence[int]) -> None:
        if outbox_ids:
            await self.session.execute(delete(outbox).where(self._id_in(outbox.c.id, outbox_ids)))

    # --- lifecycle events -----------------------------------------------------------------

    async def lock_states(self, job_ids: Sequence[uuid.UUID]) -> Sequence[Any]:
        """The jobs' state columns, locked in id order (so two readers can't deadlock)."""
        if not job_ids:
            return []
        stmt = (
            select(*STATE_COLUMNS)
            .where(self._id_in(jobs.c.id, job_ids))
            .order_by(jobs.c.id)
            .with_for_update()
        )
        return (await self.session.execute(stmt)).all()

    async def read_states(self, job_ids: Sequence[uuid.UUID]) -> Sequence[Any]:
        """The jobs' state columns, unlocked (for `record_states_if_unchanged`)."""
        if not job_ids:
            return []
        stmt = select(*STATE_COLUMNS).where(self._id_in(jobs.c.id, job_ids))
        return (await self.session.execute(stmt)).all()

    async def record_states_if_unchanged(
        self,
        guards: Sequence[tuple[uuid.UUID, JobStatus, int, int, bool]],
        params: Sequence[Mapping[str, Any]],
        history: Sequence[Mapping[str, Any]],
    ) -> set[uuid.UUID]:
        """PostgreSQL only, one statement. `guards`: (id, status, attempts, cycle, changes) of
        every job of the batch as it was read. A job whose row still holds that status,
        attempts and cycle gets its new state (`params`, as for `record_states`) and its
        history rows; the others get nothing. Returns the ids of the jobs written."""
        ids, statuses, attempts, cycles, changes = (
            zip(*guards, strict=True) if guards else ((),) * 5
        )
        values: dict[str, Any] = {
            "g0": list(ids),
            "g1": [JobStatus(status).value for status in statuses],
            "g2": list(attempts),
            "g3": list(cycles),
            "g4": list(changes),
        }
        values.update(_STATES.params(params, _state_key))
        values.update(ArrayColumns(job_events, _EVENT_KEYS, "e").params(history))
        result = await self.session.execute(_GUARDED_STATES_AND_HISTORY, values)
        return {row[0] for row in result}

    async def update_states(self, params: Sequence[Mapping[str, Any]]) -> None:
        """UPDATE-by-id of the state columns; keys are `b_<column>` (see `_STATE_UPDATE`)."""
        await self.record_states(params, ())

    async def record_states(
        self, params: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]]
    ) -> None:
        """New states of jobs (keys `b_<column>`, see `_STATE_UPDATE`) and history rows: one
        statement on PostgreSQL, an executemany UPDATE and a multi-row INSERT elsewhere."""
        if not params and not history:
            return
        if not self._bulk:
            if params:
                await self.session.execute(_STATE_UPDATE, list(params))
            await self.insert_events(history)
            return
        values = _STATES.params(params, _state_key)
        values.update(ArrayColumns(job_events, _EVENT_KEYS, "e").params(history))
        await self.session.execute(_STATES_AND_HISTORY, values)

    async def insert_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """History rows; one already recorded for (job, attempt, type) is left as it is."""
        if not rows:
            return
        if self._bulk:
            await self.session.execute(
                _insert_sql(job_events, _EVENT_KEYS, _EVENT_CONFLICT),
                ArrayColumns(job_events, _EVENT_KEYS, "p").params(rows),
            )
            return
        stmt = (
            self._insert(job_events)
            .on_conflict_do_nothing(
                index_elements=[
                    job_events.c.job_id,
                    job_events.c.cycle,
                    job_events.c.attempt,
                    job_events.c.type,
                ]
            )
            .returning(job_events.c.id)
        )
        await self.session.execute(stmt, list(rows))

    async def list_events(self, job_id: uuid.UUID) -> Sequence[JobEvent]:
        stmt = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        return (await self.session.execute(stmt)).scalars().all()

    # --- promoter -------------------------------------------------------------------------

    async def lock_due(self, now: datetime, limit: int) -> Sequence[Any]:
        """SCHEDULED jobs whose run_at passed and RETRYING jobs whose next attempt is due."""
        stmt = (
            select(jobs.c.id, jobs.c.tenant_id)
            .where(_due(now))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(stmt)).all()

    async def any_due(self, now: datetime) -> bool:
        """Whether `lock_due` would find a job (without locking any)."""
        stmt = select(jobs.c.id).where(_due(now)).limit(1)
        return (await self.session.execute(stmt)).first() is not None

    async def any_outbox(self) -> bool:
        return (await self.session.execute(select(outbox.c.id).limit(1))).first() is not None

    async def mark_pending(self, job_ids: Sequence[uuid.UUID], now: datetime) -> None:
        if job_ids:
            stmt = (
                update(jobs)
                .where(jobs.c.id.in_(list(job_ids)))
                .values(status=JobStatus.PENDING, updated_at=now)
            )
            await self.session.execute(stmt)

    # --- cancel, retry and replay ---------------------------------------------------------

    async def mark_cancelled(self, job_id: uuid.UUID, now: datetime) -> None:
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                status=JobStatus.CANCELLED, finished_at=now, next_attempt_at=None, updated_at=now
            )
        )
        await self.session.execute(stmt)

    async def start_cycles(self, job_ids: Sequence[uuid.UUID], now: datetime) -> None:
        """A new cycle of attempts: PENDING again, the cycle's budget counted from the attempts
        made so far (attempt numbers keep counting), last cycle's outcome cleared from the row
        (the history keeps it)."""
        if not job_ids:
            return
        stmt = (
            update(jobs)
            .where(jobs.c.id.in_(list(job_ids)))
            .values(
                status=JobStatus.PENDING,
                cycle=jobs.c.cycle + 1,
                prior_attempts=jobs.c.attempts,
                queued_at=None,
                started_at=None,
                finished_at=None,
                next_attempt_at=None,
                error_type=None,
                error_message=None,
                traceback=None,
                dead_letter_purged_at=None,
                updated_at=now,
            )
        )
        await self.session.execute(stmt)

    async def replace_outbox(self, rows: Sequence[Mapping[str, Any]], now: datetime) -> None:
        """Drops the jobs' outbox rows and gives each exactly one new one (`rows`: id and
        tenant_id of each job), so a job never has two messages in flight for one decision."""
        if not rows:
            return
        await self.session.execute(
            delete(outbox).where(outbox.c.job_id.in_([row["id"] for row in rows]))
        )
        await self.insert_outbox(
            [
                {"job_id": row["id"], "tenant_id": row["tenant_id"], "created_at": now}
                for row in rows
            ]
        )

    async def list_job_events(self, job_ids: Sequence[uuid.UUID]) -> Sequence[JobEvent]:
        """The history of several jobs, oldest first within each."""
        if not job_ids:
            return []
        stmt = (
            select(JobEvent)
            .where(JobEvent.job_id.in_(list(job_ids)))
            .order_by(JobEvent.job_id, JobEvent.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    # --- reconciler -----------------------------------------------------------------------

    def _current_attempt_has(self, *types: str) -> ColumnElement[bool]:
        return exists(
            select(1).where(
                job_events.c.job_id == jobs.c.id,
                job_events.c.attempt == jobs.c.attempts,
                job_events.c.type.in_(types),
            )
        )

    def _not_received(self) -> ColumnElement[bool]:
        return ~self._current_attempt_has("received", "started")

    async def lock_stale_queued(self, cutoff: datetime, limit: int) -> Sequence[Any]:
        """QUEUED jobs published before `cutoff` that no worker reported receiving and that have
        no outbox row (a publish already pending), oldest first, locked (SKIP LOCKED)."""
        stmt = (
            select(jobs.c.id, jobs.c.tenant_id, jobs.c.queue, jobs.c.attempts, jobs.c.cycle)
            .where(
                jobs.c.status == JobStatus.QUEUED,
                jobs.c.queued_at < cutoff,
                self._not_received(),
                ~exists(select(1).where(outbox.c.job_id == jobs.c.id)),
            )
            .order_by(jobs.c.queued_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(stmt)).all()

    async def count_waiting(self, queues: Sequence[str]) -> dict[str, int]:
        """Per queue: QUEUED jobs no worker reported receiving (whose message should be in the
        queue's Redis lists)."""
        if not queues:
            return {}
        stmt = (
            select(jobs.c.queue, func.count())
            .where(
                jobs.c.status == JobStatus.QUEUED,
                jobs.c.queue.in_(list(queues)),
                self._not_received(),
            )
            .group_by(jobs.c.queue)
        )
        return {queue: int(n) for queue, n in (await self.session.execute(stmt)).all()}

    async def mark_requeued(self, job_ids: Sequence[uuid.UUID], now: datetime) -> None:
        if job_ids:
            stmt = (
                update(jobs)
                .where(jobs.c.id.in_(list(job_ids)))
                .values(queued_at=now, updated_at=now)
            )
            await self.session.execute(stmt)

    async def running_since(
        self, cutoff: datetime, limit: int, after_id: uuid.UUID | None = None
    ) -> Sequence[Any]:
        """Jobs an attempt of which a worker started (or received) before `cutoff` and which have
        not finished it: RUNNING, or QUEUED with a `received` but no `started` recorded. A page
        in id order, after `after_id`."""
        received_before = exists(
            select(1).where(
                job_events.c.job_id == jobs.c.id,
                job_events.c.attempt == jobs.c.attempts,
                job_events.c.type == "received",
                job_events.c.at < cutoff,
            )
        )
        stmt = (
            select(jobs.c.id, jobs.c.tenant_id, jobs.c.task, jobs.c.attempts, jobs.c.started_at)
            .where(
                or_(
                    and_(jobs.c.status == JobStatus.RUNNING, jobs.c.started_at < cutoff),
                    and_(jobs.c.status == JobStatus.QUEUED, received_before),
                )
            )
            .order_by(jobs.c.id)
            .limit(limit)
        )
        if after_id is not None:
            stmt = stmt.where(jobs.c.id > after_id)
        return (await self.session.execute(stmt)).all()

    # --- gauges ---------------------------------------------------------------------------

    async def backlog(self) -> dict[tuple[str, str], int]:
        """(queue, status) -> jobs, for every status that is not final."""
        stmt = (
            select(jobs.c.queue, jobs.c.status, func.count())
            .where(jobs.c.status.notin_([s.value for s in FINAL_STATUSES]))
            .group_by(jobs.c.queue, jobs.c.status)
        )
        return {
            (queue, JobStatus(status).value): int(n)
            for queue, status, n in (await self.session.execute(stmt)).all()
        }

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        """How many outbox rows wait, and when the oldest was written."""
        stmt = select(func.count(), func.min(outbox.c.created_at)).select_from(outbox)
        count, oldest = (await self.session.execute(stmt)).one()
        return int(count), oldest
