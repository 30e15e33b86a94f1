"""Exceptions task authors and the worker raise."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded


class PermanentError(Exception):
    """Raise (or subclass) this from a task when retrying cannot help, e.g. a 404 or a refused
    input: the failed event then carries `retryable=False` and job-service does not retry."""


class TaskRegistrationError(Exception):
    """A task definition is unusable (bad name, signature or defaults)."""


class DuplicateTaskError(TaskRegistrationError):
    """Two task sources define the same name; the worker refuses to start rather than guess."""


class TaskDiscoveryError(Exception):
    """An entry point or configured module could not be loaded into a task registry."""


class TaskInterrupted(SoftTimeLimitExceeded):  # type: ignore[misc]
    """Raised inside a running task when the worker stops it: its job was cancelled, or another
    attempt took its lease. A subclass of Celery's `SoftTimeLimitExceeded`, so a task that
    cleans up on a soft time limit cleans up here too."""
