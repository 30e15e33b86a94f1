from __future__ import annotations

from conveyor_common.problems import Conflict, InvalidRequest


class IdempotencyKeyReused(InvalidRequest):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request body"


class IdempotencyKeyInUse(Conflict):
    slug = "idempotency-key-in-use"
    title = "Another request with this Idempotency-Key is being committed; retry it"


class JobAlreadyFinished(Conflict):
    slug = "job-already-finished"
    title = "The job already finished"


class JobNotRetryable(Conflict):
    slug = "job-not-retryable"
    title = "Only a FAILED or CANCELLED job can be retried"
