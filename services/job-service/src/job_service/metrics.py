"""job-service's own Prometheus metrics (the shared job counters live in conveyor_common)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

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
RECONCILER_ACTIONS = Counter(
    "conveyor_reconciler_actions_total",
    "What the reconciler did: republished, worker_lost, succeeded_from_result, failed_from_result",
    ["action"],
)

# Operator gauges, refreshed by gauges.py. Every replica exports the same values (read from the
# shared stores), so aggregate them with max(), not sum().
JOBS_BACKLOG = Gauge(
    "conveyor_jobs_backlog", "Jobs in each non-final status, per queue", ["queue", "status"]
)
OUTBOX_PENDING = Gauge("conveyor_outbox_pending", "Outbox rows waiting to be published")
OUTBOX_LAG = Gauge(
    "conveyor_outbox_lag_seconds", "Age of the oldest outbox row (0 when there is none)"
)
EVENTS_STREAM_LENGTH = Gauge(
    "conveyor_events_stream_length", "Entries in the lifecycle-event stream (XLEN)"
)
EVENTS_PENDING = Gauge(
    "conveyor_events_pending", "Lifecycle events read but not yet acknowledged (XPENDING)"
)
DEAD_LETTERS = Gauge("conveyor_dead_letters", "FAILED jobs in the dead letters (not purged)")
WORKERS = Gauge("conveyor_workers", "Workers consuming tasks (unexpired worker keys in Redis)")
