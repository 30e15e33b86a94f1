"""How long an `Idempotency-Key` deduplicates: `CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS`.

Within the window (counted from the job's `created_at`) the key answers the job it named; after
it the key is free: reusing it clears it from the old job and names a new one
(docs/decisions/0015). Bounded so that a typo can neither make retried requests create duplicates
within seconds nor pin keys for longer than clients are expected to retry."""

from __future__ import annotations

from datetime import timedelta

MIN_RETENTION_SECONDS = 60
MAX_RETENTION_SECONDS = 30 * 24 * 3600
DEFAULT_RETENTION_SECONDS = 24 * 3600
DEFAULT_RETENTION = timedelta(seconds=DEFAULT_RETENTION_SECONDS)
