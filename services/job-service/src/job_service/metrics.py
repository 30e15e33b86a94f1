"""job-service's own Prometheus metrics (the shared job counters live in conveyor_common)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

JOB_RUN_DURATION = Histogram(
    "conveyor_job_run_duration_seconds",
    "Run time of finished attempts",
    ["task", "queue"],
    buckets=_DURATION_BUCKETS,
)
JOB_QUEUE_WAIT = Histogram(
    "conveyor_job_queue_wait_seconds",
    "Time from publish to start of an attempt",
    ["task", "queue"],
    buckets=_DURATION_BUCKETS,
)
EVENTS_APPLIED = Counter(
    "conveyor_events_applied_total", "Lifecycle events read from the stream and applied"
)
OUTBOX_PUBLISHED = Counter("conveyor_outbox_published_total", "Jobs the outbox relay published")
JOBS_PROMOTED = Counter(
    "conveyor_jobs_promoted_total", "Scheduled or retrying jobs moved to PENDING when due"
)
