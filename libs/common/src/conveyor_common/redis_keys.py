"""Every Redis key, stream and queue name Conveyor uses, derived from one namespace.

The namespace prefixes Conveyor's own keys and, through kombu's `global_keyprefix`, Celery's
queues, bindings and result keys too, so several installations (or tests) can share one Redis
without seeing each other's data."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "conveyor"
CELERY_RESULT_PREFIX = "celery-task-meta-"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    namespace: str = DEFAULT_NAMESPACE

    @property
    def celery_prefix(self) -> str:
        """kombu's `global_keyprefix`: prepended to Celery queue lists and result keys."""
        return f"{self.namespace}:"

    @property
    def catalog(self) -> str:
        """Hash: task name -> TaskDescriptor JSON, written by workers, read by job-service."""
        return f"{self.namespace}:catalog"

    @property
    def workers(self) -> str:
        """Prefix of one key per live worker, kept alive by the worker's heartbeat."""
        return f"{self.namespace}:worker:"

    def worker(self, worker_name: str) -> str:
        return f"{self.workers}{worker_name}"

    @property
    def events_stream(self) -> str:
        """Stream of LifecycleEvent entries, read by job-service with a consumer group."""
        return f"{self.namespace}:events"

    events_group: str = "job-service"

    def result(self, job_id: str) -> str:
        """Where Celery's Redis result backend stores a job's result."""
        return f"{self.celery_prefix}{CELERY_RESULT_PREFIX}{job_id}"

    def queue(self, queue_key: str) -> str:
        """The Redis list kombu reads for a queue (see messages.queue_key for priorities)."""
        return f"{self.celery_prefix}{queue_key}"
