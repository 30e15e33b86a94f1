"""Every Redis key and stream name Conveyor uses, in one place (all under one prefix so a
shared Redis can hold several installations)."""

from __future__ import annotations

PREFIX = "conveyor"

# Hash: task name -> TaskDescriptor JSON. Written by workers at start-up, read by job-service.
CATALOG = f"{PREFIX}:catalog"
# Key per live worker, with a TTL the worker keeps renewing: value is WorkerInfo JSON.
WORKER_PREFIX = f"{PREFIX}:worker:"
# Stream of LifecycleEvent entries; job-service reads it with a consumer group.
EVENTS_STREAM = f"{PREFIX}:events"
EVENTS_GROUP = "job-service"
# Celery stores results under this prefix (its Redis backend's own naming).
CELERY_RESULT_PREFIX = "celery-task-meta-"


def worker_key(worker_name: str) -> str:
    return f"{WORKER_PREFIX}{worker_name}"


def result_key(job_id: str) -> str:
    return f"{CELERY_RESULT_PREFIX}{job_id}"
