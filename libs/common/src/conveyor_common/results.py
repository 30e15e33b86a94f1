"""How a task's outcome is stored as a Celery result-backend record, for the worker that writes
it (in Celery's format, by its own script) and the result-service that reads it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class StoredResult(BaseModel):
    """The value a successful Conveyor task returns, stored as its record's `result`."""

    tenant_id: str
    attempt: int
    value: Any = None


class TaskFailure(Exception):
    """Raised by the worker's task wrapper after a task failed, so the FAILURE record names the
    tenant (for the result-service's tenant check) and the error's type and message."""

    def __init__(self, tenant_id: str, error_type: str, message: str) -> None:
        super().__init__(tenant_id, error_type, message)
        self.tenant_id = tenant_id
        self.error_type = error_type
        self.message = message
