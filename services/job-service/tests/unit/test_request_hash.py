"""Idempotency keys survive the upgrade that added the retry overrides to JobCreate (pure)."""

from __future__ import annotations

import hashlib
import json

from conveyor_common.jobs import JobCreate
from job_service.jobs.service import _request_hash


def _as_before(job: JobCreate) -> str:
    body = job.model_dump(mode="json")
    del body["retry_backoff_seconds"], body["retry_backoff_max_seconds"]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_a_body_without_the_new_fields_hashes_as_it_did_before_them() -> None:
    job = JobCreate(task="echo", args={"x": 1}, tags=["a"])
    assert _request_hash(job) == _as_before(job)


def test_the_new_fields_count_when_set() -> None:
    plain = JobCreate(task="echo")
    assert _request_hash(plain) != _request_hash(JobCreate(task="echo", retry_backoff_seconds=1))
    assert _request_hash(plain) != _request_hash(
        JobCreate(task="echo", retry_backoff_max_seconds=1)
    )
