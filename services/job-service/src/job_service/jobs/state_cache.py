"""The state of jobs in flight as this replica last wrote them, so the event applier can decide
a batch without reading the jobs first (one PostgreSQL round trip per batch instead of two).

Only a hint, never the record: the applier's write is guarded by each job's (status, attempts,
cycle) as the decision saw them (`JobRepository.record_states_if_unchanged`), so an entry that
another writer made stale (a cancel, a retry, the promoter, another replica) costs one more
round, never a wrong state. Every other column the state machine reads changes only together
with one of those three (`queued_at`, which the reconciler moves on a re-publish, only feeds the
queue-wait metric).

The relay adds the jobs it published, the applier keeps the ones it advanced and drops the
finished ones, so the cache holds about the jobs queued or running; it is bounded all the same
(the oldest entries go first)."""

from __future__ import annotations

import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conveyor_common.statuses import JobStatus


@dataclass(frozen=True, slots=True)
class CachedJob:
    """A job's state columns (`repository.STATE_COLUMNS`), as a row of them reads."""

    id: uuid.UUID
    tenant_id: str
    task: str
    queue: str
    status: JobStatus
    attempts: int
    max_attempts: int
    prior_attempts: int
    cycle: int
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    retry_jitter: bool
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    error_type: str | None
    error_message: str | None
    traceback: str | None

    @classmethod
    def from_row(cls, row: Any, **changes: Any) -> CachedJob:
        """From a row holding (at least) the state columns, or a cached job, with `changes`
        applied."""
        if isinstance(row, CachedJob):
            return dataclasses.replace(row, **changes) if changes else row
        mapping: Mapping[str, Any] = row._mapping
        values = {name: mapping[name] for name in _FIELDS}
        values.update(changes)
        values["status"] = JobStatus(values["status"])
        return cls(**values)


_FIELDS = tuple(f.name for f in dataclasses.fields(CachedJob))


class StateCache:
    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._jobs: OrderedDict[uuid.UUID, CachedJob] = OrderedDict()

    def __len__(self) -> int:
        return len(self._jobs)

    def lookup(
        self, job_ids: Iterable[uuid.UUID]
    ) -> tuple[dict[uuid.UUID, CachedJob], list[uuid.UUID]]:
        """The cached jobs among `job_ids`, and the ids not cached."""
        hits: dict[uuid.UUID, CachedJob] = {}
        misses: list[uuid.UUID] = []
        for job_id in job_ids:
            cached = self._jobs.get(job_id)
            if cached is None:
                misses.append(job_id)
            else:
                hits[job_id] = cached
        return hits, misses

    def remember(self, jobs: Iterable[CachedJob]) -> None:
        """Caches jobs as just committed; finished ones are dropped (no event changes them)."""
        for job in jobs:
            if job.status.is_final:
                self._jobs.pop(job.id, None)
                continue
            self._jobs[job.id] = job
            # Eviction drops the entries written longest ago.
            self._jobs.move_to_end(job.id)
        while len(self._jobs) > self._max:
            self._jobs.popitem(last=False)

    def forget(self, job_ids: Sequence[uuid.UUID] | set[uuid.UUID]) -> None:
        for job_id in job_ids:
            self._jobs.pop(job_id, None)
