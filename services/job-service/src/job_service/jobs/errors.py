from __future__ import annotations

from conveyor_common.problems import InvalidRequest


class IdempotencyKeyReused(InvalidRequest):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used with a different request body"
