from __future__ import annotations

from conveyor_common.problems import Conflict, InvalidRequest


class IdempotencyKeyReused(InvalidRequest):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request body"


class JobAlreadyFinished(Conflict):
    slug = "job-already-finished"
    title = "The job already finished"


class JobNotRetryable(Conflict):
    slug = "job-not-retryable"
    title = "Only a FAILED or CANCELLED job can be retried"
