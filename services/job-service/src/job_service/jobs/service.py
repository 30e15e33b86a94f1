"""Rules of submitting and reading jobs. Services flush; the request's session commits."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common import limits, metrics
from conveyor_common.ids import new_id
from conveyor_common.jobs import (
    BatchCreate,
    JobCreate,
    JobError,
    JobEventList,
    JobEventRead,
    JobList,
    JobRead,
)
from conveyor_common.problems import ConveyorError, FieldError, InvalidRequest, JobNotFound
from conveyor_common.statuses import JobStatus
from job_service.clock import utcnow
from job_service.db import after_commit
from job_service.jobs.cursor import decode_cursor, encode_cursor
from job_service.jobs.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    JobAlreadyFinished,
    JobNotRetryable,
)
from job_service.jobs.history import Action, history_row
from job_service.jobs.idempotency import DEFAULT_RETENTION
from job_service.jobs.repository import JobRepository
from job_service.jobs.retry_policy import RetryPolicy
from job_service.jobs.time_limits import TimeLimits
from job_service.models import Job, JobEvent
from job_service.tasks.catalog import CatalogCache, CatalogEntry
from job_service.tasks.errors import UnknownTask
from job_service.tasks.validation import args_errors

MAX_FIELD_ERRORS = 50
DEFAULT_TIME_LIMITS = TimeLimits.derive(
    max_timeout_seconds=limits.MAX_TIMEOUT_SECONDS, grace_seconds=30
)
# JobCreate fields added after idempotency keys were first stored: left out of a request's hash
# while unset, so a request retried across an upgrade still matches its key.
_FIELDS_HASHED_ONLY_WHEN_SET = ("retry_backoff_seconds", "retry_backoff_max_seconds")


class JobService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: CatalogCache,
        *,
        time_limits: TimeLimits = DEFAULT_TIME_LIMITS,
        idempotency_retention: timedelta = DEFAULT_RETENTION,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.session = session
        self.repository = JobRepository.from_session(session)
        self.catalog = catalog
        self.time_limits = time_limits
        self.idempotency_retention = idempotency_retention
        self.clock = clock

    # --- submission -----------------------------------------------------------------------

    async def submit(
        self,
        tenant_id: str,
        job: JobCreate,
        *,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[JobRead, bool]:
        """Stores one job (and its outbox row unless it's scheduled for later). Returns the job
        and whether it was created (False: an earlier request with the same key and body).
        `traceparent` (tracing on) is stored with the job for every message published for it."""
        request_hash = _request_hash(job) if idempotency_key else None
        if idempotency_key is not None:
            existing = await self.repository.get_by_idempotency_key(tenant_id, idempotency_key)
            if existing is not None and await self._unexpired(tenant_id, [existing]):
                return _replay(existing, request_hash), False

        entries = await self.catalog.entries()
        self._validate([job], entries, prefix=lambda _i: "body")
        now = self.clock()
        row = _job_row(tenant_id, job, entries[job.task], now, traceparent)

        if idempotency_key is None:
            # The job and its outbox row: one statement on PostgreSQL.
            await self.repository.insert_jobs([row], _outbox_rows([row], now))
        else:
            row |= {"idempotency_key": idempotency_key, "request_hash": request_hash}
            if not await self.repository.insert_job_if_absent(row):
                # Another request with this key committed between our look-up and insert.
                existing = await self.repository.get_by_idempotency_key(tenant_id, idempotency_key)
                if existing is None:  # pragma: no cover - the conflicting row vanished
                    raise IdempotencyKeyReused("The Idempotency-Key is being used concurrently.")
                return _replay(existing, request_hash), False
            await self.repository.insert_outbox(_outbox_rows([row], now))
        self._count_submitted([row])
        return _read_from_row(row), True

    async def submit_batch(
        self,
        tenant_id: str,
        batch: BatchCreate,
        *,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[list[JobRead], bool]:
        """Stores every job of the batch or none: one multi-row insert per table. Every job
        gets the batch request's `traceparent`: one trace per request, holding all its jobs.
        Returns the jobs and whether they were created (False: an earlier request with the same
        key and body). With a key, job i is stored under `batch_job_key(key, i)`."""
        keys: list[str] | None = None
        request_hash: str | None = None
        if idempotency_key is not None:
            keys = [batch_job_key(idempotency_key, i) for i in range(len(batch.jobs))]
            request_hash = _batch_hash(batch)
            existing = await self._stored_batch(tenant_id, keys, request_hash)
            if existing is not None:
                return existing, False

        entries = await self.catalog.entries()
        self._validate(batch.jobs, entries, prefix=lambda i: f"body.jobs.{i}")
        now = self.clock()
        rows = [_job_row(tenant_id, job, entries[job.task], now, traceparent) for job in batch.jobs]
        outbox_rows = _outbox_rows(rows, now)
        if keys is None:
            # The jobs and their outbox rows: one statement on PostgreSQL.
            await self.repository.insert_jobs(rows, outbox_rows)
        else:
            for row, key in zip(rows, keys, strict=True):
                row |= {"idempotency_key": key, "request_hash": request_hash}
            if await self.repository.insert_jobs_if_absent(rows) < len(rows):
                # Another request with this key committed first (this one waited on its rows).
                existing = await self._stored_batch(tenant_id, keys, request_hash)
                if existing is None:
                    # Only part of the batch conflicted: the session rolls back the rest.
                    raise IdempotencyKeyInUse("The Idempotency-Key is being used concurrently.")
                return existing, False
            await self.repository.insert_outbox(outbox_rows)
        self._count_submitted(rows)
        return _reads_from_rows(rows), True

    async def submit_each(
        self, tenant_id: str, jobs: Sequence[JobCreate]
    ) -> list[JobRead | ConveyorError]:
        """Judges each job on its own, as if it came alone (its errors name `body.*`), and
        stores the valid ones with their outbox rows in one statement. Returns, in order, each
        stored job or the error its own submit would have raised. Coalesced submits carry no
        Idempotency-Key (the gateway sends keyed ones alone)."""
        entries = await self.catalog.entries()
        now = self.clock()
        outcomes: list[dict[str, Any] | ConveyorError] = []
        for job in jobs:
            try:
                self._validate([job], entries, prefix=lambda _i: "body")
            except ConveyorError as refused:
                outcomes.append(refused)
                continue
            outcomes.append(_job_row(tenant_id, job, entries[job.task], now))
        rows = [outcome for outcome in outcomes if not isinstance(outcome, ConveyorError)]
        if rows:
            await self.repository.insert_jobs(rows, _outbox_rows(rows, now))
            self._count_submitted(rows)
        reads = iter(_reads_from_rows(rows))
        return [
            outcome if isinstance(outcome, ConveyorError) else next(reads) for outcome in outcomes
        ]

    async def _stored_batch(
        self, tenant_id: str, keys: Sequence[str], request_hash: str | None
    ) -> list[JobRead] | None:
        """The jobs an earlier batch with these keys stored (None if there are none, or only
        some: its transaction is not this one's to judge); IdempotencyKeyReused if its body
        differed."""
        found = {
            job.idempotency_key: job
            for job in await self._unexpired(
                tenant_id, await self.repository.get_by_idempotency_keys(tenant_id, keys)
            )
        }
        if any(job.request_hash != request_hash for job in found.values()):
            raise _key_reused()
        if len(found) != len(keys):
            return None
        return [read_from_orm(found[key]) for key in keys]

    async def _unexpired(self, tenant_id: str, jobs: Sequence[Job]) -> list[Job]:
        """The jobs (found by their idempotency keys) still inside the retention window. The
        others' keys are released in this transaction, before the insert that reuses them, so
        the unique index keeps deciding races between reuses."""
        cutoff = self.clock() - self.idempotency_retention
        expired = [
            job.idempotency_key
            for job in jobs
            if job.created_at <= cutoff and job.idempotency_key is not None
        ]
        if expired:
            await self.repository.release_idempotency_keys(tenant_id, expired, cutoff)
        return [job for job in jobs if job.created_at > cutoff]

    def _validate(
        self,
        jobs: Sequence[JobCreate],
        entries: Mapping[str, CatalogEntry],
        *,
        prefix: Callable[[int], str],
    ) -> None:
        unknown = [
            FieldError(field=f"{prefix(i)}.task", reason="no worker advertises this task")
            for i, job in enumerate(jobs)
            if job.task not in entries
        ]
        if unknown:
            raise UnknownTask(
                "Unknown task; see `known_tasks` (GET /v1/tasks lists each task's input schema).",
                errors=unknown[:MAX_FIELD_ERRORS],
                extra={"known_tasks": sorted(entries)},
            )
        errors: list[FieldError] = []
        for i, job in enumerate(jobs):
            errors.extend(
                self._timeout_errors(job, entries[job.task], f"{prefix(i)}.timeout_seconds")
            )
            errors.extend(args_errors(entries[job.task].validator, job.args, f"{prefix(i)}.args"))
            if len(errors) >= MAX_FIELD_ERRORS:
                break
        if errors:
            errors = errors[:MAX_FIELD_ERRORS]
            raise InvalidRequest(
                "; ".join(f"{e.field}: {e.reason}" for e in errors[:5]), errors=errors
            )

    def _timeout_errors(self, job: JobCreate, entry: CatalogEntry, field: str) -> list[FieldError]:
        bound = self.time_limits.max_timeout_seconds
        if job.timeout_seconds is not None:
            if job.timeout_seconds > bound:
                return [
                    FieldError(field=field, reason=f"over this deployment's limit of {bound} s")
                ]
        elif entry.descriptor.defaults.timeout_seconds > bound:
            # Running the task under a shorter limit than its author set would be a silent
            # change of meaning; the operator must raise CONVEYOR_MAX_TIMEOUT_SECONDS instead.
            return [
                FieldError(
                    field=field,
                    reason=f"the task's default of {entry.descriptor.defaults.timeout_seconds} s "
                    f"is over this deployment's limit of {bound} s; pass a shorter one",
                )
            ]
        return []

    def _count_submitted(self, rows: Sequence[Mapping[str, Any]]) -> None:
        counts = Counter((row["task"], metrics.queue_label(row["queue"])) for row in rows)

        def count() -> None:
            for (task, queue), n in counts.items():
                metrics.JOBS_SUBMITTED.labels(task, queue).inc(n)

        after_commit(self.session, count)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, tenant_id: str, job_id: uuid.UUID) -> JobRead:
        job = await self.repository.get(tenant_id, job_id)
        if job is None:
            # Another tenant's job answers exactly like a missing one.
            raise JobNotFound(f"No job {job_id}.")
        return read_from_orm(job)

    async def list(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: JobStatus | None = None,
        task: str | None = None,
        queue: str | None = None,
        tag: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> JobList:
        before_id = decode_cursor(cursor) if cursor is not None else None
        if created_after and created_before and created_after >= created_before:
            raise InvalidRequest(
                "created_after must be before created_before",
                errors=[
                    FieldError(field="query.created_after", reason="must be before created_before")
                ],
            )
        rows = await self.repository.list(
            tenant_id,
            limit=limit + 1,
            before_id=before_id,
            status=status,
            task=task,
            queue=queue,
            tag=tag,
            created_after=created_after,
            created_before=created_before,
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
        return JobList(items=[read_from_orm(job) for job in page], next_cursor=next_cursor)

    async def events(self, tenant_id: str, job_id: uuid.UUID) -> JobEventList:
        if await self.repository.get(tenant_id, job_id) is None:
            raise JobNotFound(f"No job {job_id}.")
        rows = await self.repository.list_job_events([job_id])
        return JobEventList(items=[event_read(row) for row in rows])

    # --- cancel and retry -----------------------------------------------------------------

    async def cancel(self, tenant_id: str, job_id: uuid.UUID) -> JobRead:
        """CANCELLED in PostgreSQL, which no later event can change. Its outbox row is replaced
        by one that makes the relay write the job's Redis cancel key (so workers skip or stop
        it) even if Redis is down right now. Cancelling a CANCELLED job changes nothing."""
        job = await self.repository.get_for_update(tenant_id, job_id)
        if job is None:
            raise JobNotFound(f"No job {job_id}.")
        if job.status == JobStatus.CANCELLED:
            return read_from_orm(job)
        if job.status.is_final:
            raise JobAlreadyFinished(
                f"Job {job_id} already finished ({job.status.value}).",
                extra={"status": job.status.value},
            )
        now = self.clock()
        await self.repository.mark_cancelled(job.id, now)
        await self.repository.replace_outbox([{"id": job.id, "tenant_id": tenant_id}], now)
        await self.repository.insert_events(
            [
                history_row(
                    job_id=job.id,
                    tenant_id=tenant_id,
                    attempt=job.attempts,
                    cycle=job.cycle,
                    action=Action.CANCELLED,
                    at=now,
                    detail=f"cancelled while {job.status.value}",
                )
            ]
        )
        task, queue = job.task, metrics.queue_label(job.queue)

        def count() -> None:
            metrics.JOBS_FINISHED.labels(task, queue, JobStatus.CANCELLED.value).inc()

        after_commit(self.session, count)
        await self.session.refresh(job)
        return read_from_orm(job)

    async def retry(self, tenant_id: str, job_id: uuid.UUID) -> JobRead:
        """A FAILED or CANCELLED job starts a new cycle of `max_attempts` attempts."""
        job = await self.repository.get_for_update(tenant_id, job_id)
        if job is None:
            raise JobNotFound(f"No job {job_id}.")
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise JobNotRetryable(
                f"Job {job_id} is {job.status.value}.", extra={"status": job.status.value}
            )
        await start_cycles(self.repository, [job], Action.RETRIED, self.clock())
        await self.session.refresh(job)
        return read_from_orm(job)


def _request_hash(job: JobCreate) -> str:
    body = job.model_dump(mode="json")
    for name in _FIELDS_HASHED_ONLY_WHEN_SET:
        if body.get(name) is None:
            body.pop(name, None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _batch_hash(batch: BatchCreate) -> str:
    canonical = json.dumps([_request_hash(job) for job in batch.jobs], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def batch_job_key(idempotency_key: str, index: int) -> str:
    """The stored key of job `index` of a batch submitted with `idempotency_key`: one per job,
    so each task gets a key of its own for its effects. The space keeps these apart from any
    key a client can send (visible ASCII); a key too long to take the suffix is digested."""
    suffix = f" #{index}"
    if len(idempotency_key) + len(suffix) > limits.MAX_IDEMPOTENCY_KEY_LENGTH:
        idempotency_key = "sha256:" + hashlib.sha256(idempotency_key.encode()).hexdigest()
    return idempotency_key + suffix


def _key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "This Idempotency-Key was already used with a different body; use a new key.",
        errors=[
            FieldError(field="header.Idempotency-Key", reason="already used with another body")
        ],
    )


def _replay(existing: Job, request_hash: str | None) -> JobRead:
    if existing.request_hash != request_hash:
        raise _key_reused()
    return read_from_orm(existing)


def _job_row(
    tenant_id: str,
    job: JobCreate,
    entry: CatalogEntry,
    now: datetime,
    traceparent: str | None = None,
) -> dict[str, Any]:
    defaults = entry.descriptor.defaults
    scheduled = job.run_at is not None and job.run_at > now
    policy = RetryPolicy.for_submission(defaults, job)
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "task": job.task,
        "queue": job.queue or defaults.queue,
        "priority": job.priority,
        "args": job.args,
        "status": JobStatus.SCHEDULED if scheduled else JobStatus.PENDING,
        "attempts": 0,
        "max_attempts": policy.max_attempts,
        "retry_backoff_seconds": policy.backoff_seconds,
        "retry_backoff_max_seconds": policy.backoff_max_seconds,
        "retry_jitter": policy.jitter,
        "cycle": 1,
        "prior_attempts": 0,
        "timeout_seconds": job.timeout_seconds or defaults.timeout_seconds,
        "tags": list(job.tags),
        "metadata": dict(job.metadata),
        "created_at": now,
        "updated_at": now,
        "run_at": job.run_at,
        "traceparent": traceparent,
    }


def _outbox_rows(rows: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    # A job scheduled for later gets its outbox row from the promoter when it is due.
    return [
        {"job_id": row["id"], "tenant_id": row["tenant_id"], "created_at": now}
        for row in rows
        if row["status"] == JobStatus.PENDING
    ]


# A new job's row holds each of JobRead's fields under the field's name (the rest, such as
# tenant_id, JobRead ignores; those it lacks, like queued_at, are unset on a new job). One
# validation of a whole batch's rows costs a fifth of building 1,000 JobReads one by one.
_JOB_READS = TypeAdapter(list[JobRead])


def _read_from_row(row: Mapping[str, Any]) -> JobRead:
    return JobRead.model_validate(row)


def _reads_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[JobRead]:
    return _JOB_READS.validate_python(rows)


def read_from_orm(job: Job) -> JobRead:
    error = (
        JobError(type=job.error_type, message=job.error_message or "")
        if job.error_type is not None
        else None
    )
    return JobRead(
        id=job.id,
        task=job.task,
        status=job.status,
        queue=job.queue,
        priority=job.priority,
        args=job.args,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        timeout_seconds=job.timeout_seconds,
        tags=job.tags,
        metadata=job.metadata_,
        idempotency_key=job.idempotency_key,
        error=error,
        created_at=job.created_at,
        run_at=job.run_at,
        queued_at=job.queued_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        next_attempt_at=job.next_attempt_at,
        cycle=job.cycle,
        dead_letter=job.status == JobStatus.FAILED and job.dead_letter_purged_at is None,
        retry_backoff_seconds=job.retry_backoff_seconds,
        retry_backoff_max_seconds=job.retry_backoff_max_seconds,
    )


def event_read(row: JobEvent) -> JobEventRead:
    return JobEventRead(
        attempt=row.attempt,
        cycle=row.cycle,
        type=row.type,
        at=row.at,
        worker=row.worker,
        duration_ms=row.duration_ms,
        error_type=row.error_type,
        error_message=row.error_message,
    )


async def start_cycles(
    repository: JobRepository, jobs: Sequence[Job], action: Action, now: datetime
) -> None:
    """A new cycle for each job (retry or dead-letter replay): PENDING with one outbox row, a
    fresh budget of `max_attempts`, and a history row that links the cycles. The relay clears
    the job's Redis cancel key when it publishes the new cycle's first attempt."""
    if not jobs:
        return
    # Written from the rows as they were, before the UPDATE below moves them on.
    history = [
        history_row(
            job_id=job.id,
            tenant_id=job.tenant_id,
            attempt=job.attempts,
            cycle=job.cycle + 1,
            action=action,
            at=now,
            detail=f"cycle {job.cycle + 1} after {job.status.value}; "
            f"up to {job.max_attempts} more attempts",
        )
        for job in jobs
    ]
    await repository.start_cycles([job.id for job in jobs], now)
    await repository.replace_outbox(
        [{"id": job.id, "tenant_id": job.tenant_id} for job in jobs], now
    )
    await repository.insert_events(history)
