"""Interpreting the JSON record Celery's Redis result backend stores for a task.

The record is `{"status", "result", "traceback", "children", "date_done", "task_id"}`. A
successful Conveyor task's `result` is a `StoredResult`; a failed one's is Celery's exception
record of `TaskFailure` (`{"exc_type", "exc_message": [tenant, error_type, message],
"exc_module"}`). This module is pure logic so every outcome is testable without Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from conveyor_common.results import StoredResult, TaskFailure
from result_service.errors import (
    JobFailed,
    JobNotFinished,
    ResultNotFound,
    StoredResultUnreadable,
)

# Celery's states (celery.states), spelled out so this module does not import Celery.
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
UNREADY_STATES = frozenset({"PENDING", "RECEIVED", "STARTED", "RETRY"})


class CeleryRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    result: Any = None
    task_id: str | None = None


class ExceptionRecord(BaseModel):
    """Celery's JSON form of a stored exception (`backend.prepare_exception`)."""

    model_config = ConfigDict(extra="ignore")

    exc_type: str
    exc_message: list[Any] | tuple[Any, ...] | str | None = None
    exc_module: str | None = None


@dataclass(frozen=True, slots=True)
class Success:
    value: Any


def parse_record(raw: bytes, job_id: str) -> CeleryRecord:
    try:
        record = CeleryRecord.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise StoredResultUnreadable(
            "The result backend holds a record that is not valid Celery JSON."
        ) from exc
    if record.task_id is not None and record.task_id != job_id:
        raise StoredResultUnreadable("The stored record names a different task id.")
    return record


def outcome(raw: bytes | None, *, job_id: str, tenant_id: str) -> Success:
    """The stored value of a succeeded job of `tenant_id`, or the problem to answer instead."""
    if raw is None:
        raise ResultNotFound()
    record = parse_record(raw, job_id)
    if record.status in UNREADY_STATES:
        # Conveyor tracks status in PostgreSQL; Celery's own unready states carry no tenant,
        # so they say only "not finished", never anything about the job itself.
        raise JobNotFinished("The job has no final result yet.")
    if record.status == SUCCESS:
        return _success(record, tenant_id)
    if record.status == FAILURE:
        raise _failure(record, tenant_id)
    if record.status == REVOKED:
        # A Celery revoke record carries no tenant, so it cannot be shown to anyone safely;
        # Conveyor cancels through PostgreSQL and the job's status says CANCELLED there.
        raise ResultNotFound()
    raise StoredResultUnreadable(f"The stored record has an unknown status {record.status!r}.")


def _success(record: CeleryRecord, tenant_id: str) -> Success:
    try:
        stored = StoredResult.model_validate(record.result)
    except ValidationError as exc:
        raise StoredResultUnreadable(
            "The stored result is not a Conveyor result (tenant, attempt, value)."
        ) from exc
    if stored.tenant_id != tenant_id:
        raise ResultNotFound()
    return Success(stored.value)


def _failure(record: CeleryRecord, tenant_id: str) -> Exception:
    try:
        exc_record = ExceptionRecord.model_validate(record.result)
    except ValidationError:
        return StoredResultUnreadable("The stored failure is not a Celery exception record.")
    if exc_record.exc_type != TaskFailure.__name__:
        # A failure Celery recorded itself (a hard time limit, a lost worker) has no tenant to
        # check, so it is answered exactly like a missing result; the job's status and error
        # in job-service are the record the client reads.
        return ResultNotFound()
    args = exc_record.exc_message
    if (
        not isinstance(args, list | tuple)
        or len(args) != 3
        or not all(isinstance(a, str) for a in args)
    ):
        return StoredResultUnreadable(
            "The stored TaskFailure does not carry (tenant, type, message)."
        )
    failed_tenant, error_type, message = args
    if failed_tenant != tenant_id:
        return ResultNotFound()
    return JobFailed(
        f"The task raised {error_type}.", extra={"error": {"type": error_type, "message": message}}
    )
