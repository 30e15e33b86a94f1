"""The event applier's cache of jobs in flight: bounded, and never holding a finished job."""

from __future__ import annotations

import uuid

from conveyor_common.statuses import JobStatus
from job_service.jobs.state_cache import CachedJob, StateCache


def _job(status: JobStatus = JobStatus.QUEUED) -> CachedJob:
    return CachedJob(
        id=uuid.uuid4(),
        tenant_id="acme",
        task="echo",
        queue="default",
        status=status,
        attempts=1,
        max_attempts=3,
        prior_attempts=0,
        cycle=1,
        retry_backoff_seconds=2.0,
        retry_backoff_max_seconds=300.0,
        retry_jitter=True,
        queued_at=None,
        started_at=None,
        finished_at=None,
        next_attempt_at=None,
        error_type=None,
        error_message=None,
        traceback=None,
    )


def test_a_finished_job_leaves_the_cache() -> None:
    cache = StateCache()
    job = _job()
    cache.remember([job])
    assert cache.lookup([job.id]) == ({job.id: job}, [])

    cache.remember([CachedJob.from_row(job, status=JobStatus.SUCCEEDED)])

    assert cache.lookup([job.id]) == ({}, [job.id])
    assert len(cache) == 0


def test_the_oldest_written_entries_go_first_when_full() -> None:
    cache = StateCache(max_entries=2)
    a, b, c = _job(), _job(), _job()
    cache.remember([a, b])
    cache.remember([CachedJob.from_row(a, status=JobStatus.RUNNING)])  # a is now the newest
    cache.remember([c])

    hits, misses = cache.lookup([a.id, b.id, c.id])
    assert set(hits) == {a.id, c.id}
    assert hits[a.id].status == JobStatus.RUNNING
    assert misses == [b.id]
