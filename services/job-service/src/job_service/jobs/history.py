"""History rows job-service records itself, next to the workers' lifecycle events."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    CANCELLED = "cancelled"  # POST .../cancel
    RETRIED = "retried"  # POST .../retry: a new cycle
    REPLAYED = "replayed"  # a dead letter replayed: a new cycle
    REPUBLISHED = "republished"  # the reconciler re-published a lost message


def history_row(
    *,
    job_id: uuid.UUID,
    tenant_id: str,
    attempt: int,
    cycle: int,
    action: Action,
    at: datetime,
    detail: str | None = None,
) -> dict[str, Any]:
    """A `job_events` row for one of job-service's own actions, at the job's current attempt."""
    return {
        "job_id": job_id,
        "tenant_id": tenant_id,
        "attempt": attempt,
        "cycle": cycle,
        "type": action.value,
        "at": at,
        "worker": None,
        "duration_ms": None,
        "error_type": None,
        "error_message": detail,
        "recorded_at": at,
    }
