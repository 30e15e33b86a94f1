"""Exceptions task authors and the worker raise."""

from __future__ import annotations


class PermanentError(Exception):
    """Raise (or subclass) this from a task when retrying cannot help, e.g. a 404 or a refused
    input: the failed event then carries `retryable=False` and job-service does not retry."""


class TaskRegistrationError(Exception):
    """A task definition is unusable (bad name, signature or defaults)."""


class DuplicateTaskError(TaskRegistrationError):
    """Two task sources define the same name; the worker refuses to start rather than guess."""


class TaskDiscoveryError(Exception):
    """An entry point or configured module could not be loaded into a task registry."""
