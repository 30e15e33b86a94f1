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

    def fence(self, job_id: str) -> str:
        """String: the highest attempt number a worker has ever started for the job.

        Set by the worker's acquire script (TTL = 2 x visibility timeout); a message whose attempt
        is not above it is a redelivery of an attempt that ran or runs, and is skipped."""
        return f"{self.namespace}:fence:{job_id}"

    def lease(self, job_id: str) -> str:
        """String `"<attempt>:<worker>"` held while an attempt runs.

        TTL `CONVEYOR_LEASE_TTL_SECONDS`, renewed by the worker's heartbeat and deleted when the
        attempt ends; job-service's reconciler treats a RUNNING job without it as a lost attempt."""
        return f"{self.namespace}:lease:{job_id}"

    @property
    def api_key_revocations(self) -> str:
        """Pub/sub channel: the id of an API key that was revoked or rotated, published so every
        gateway replica drops what it cached for that key at once."""
        return f"{self.namespace}:api-keys:revoked"

    def cancel(self, job_id: str) -> str:
        """Exists when the job was cancelled (TTL = 2 x visibility timeout).

        Written by job-service on cancel so workers skip or stop the job; PostgreSQL stays the
        record of the cancel."""
        return f"{self.namespace}:cancel:{job_id}"
