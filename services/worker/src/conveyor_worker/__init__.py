"""Conveyor's stateless Celery worker and the API task authors use.

    from conveyor_worker import JobContext, PermanentError, TaskRegistry

Importing this package builds nothing and imports no metrics (see `__main__`).
"""

from conveyor_common.envelope import JobContext
from conveyor_worker.errors import (
    DuplicateTaskError,
    PermanentError,
    TaskInterrupted,
    TaskRegistrationError,
)
from conveyor_worker.registry import RegisteredTask, TaskRegistry

__all__ = [
    "DuplicateTaskError",
    "JobContext",
    "PermanentError",
    "RegisteredTask",
    "TaskInterrupted",
    "TaskRegistrationError",
    "TaskRegistry",
]
