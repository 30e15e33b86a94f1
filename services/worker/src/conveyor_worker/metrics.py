"""The worker's Prometheus metrics. Prefork children write them through prometheus_client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set up by `__main__` before this is imported)."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from conveyor_common.metrics import JOBS_FINISHED, JOBS_STARTED

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

__all__ = ["BUSY_SLOTS", "JOBS_FINISHED", "JOBS_STARTED", "JOB_RUN_DURATION"]
