"""The worker's Prometheus metrics. Prefork children write them through prometheus_client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set up by `__main__` before this is imported).

Job counts by final status (`conveyor_jobs_finished_total`) are job-service's, from PostgreSQL,
once per job; the worker counts what it did with each message it took, under its own name, so
no sum across services counts a job twice."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # fenced: cancelled, or a redelivery of an attempt that already started
    CANCELLED = "cancelled"  # stopped while running because its job was cancelled


TASKS = Counter(
    "conveyor_worker_tasks_total",
    "Task messages this worker handled, by outcome",
    ["task", "queue", "outcome"],
)
JOB_RUN_DURATION = Histogram(
    "conveyor_job_run_duration_seconds",
    "Time a task function ran, per attempt",
    ["task", "queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
BUSY_SLOTS = Gauge(
    "conveyor_worker_busy_slots",
    "Task functions running right now",
    multiprocess_mode="livesum",
)

__all__ = ["BUSY_SLOTS", "JOB_RUN_DURATION", "TASKS", "Outcome"]
