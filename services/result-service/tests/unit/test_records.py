"""Every answer the record interpreter can give, from hand-written Celery records."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from result_service.errors import (
    JobFailed,
    JobNotFinished,
    ResultNotFound,
    StoredResultUnreadable,
)
from result_service.results.records import outcome

JOB_ID = str(uuid.uuid4())


def record(status: str, result: Any, task_id: str = JOB_ID) -> bytes:
    return json.dumps(
        {
            "status": status,
            "result": result,
            "traceback": None,
            "children": None,
            "date_done": "2025-01-01T00:00:00+00:00",
            "task_id": task_id,
        }
    ).encode()


def failure(tenant: str, error_type: str = "ValueError", message: str = "boom") -> bytes:
    return record(
        "FAILURE",
        {
            "exc_type": "TaskFailure",
            "exc_message": [tenant, error_type, message],
            "exc_module": "conveyor_common.results",
        },
    )


def test_success_of_own_tenant_returns_value() -> None:
    raw = record("SUCCESS", {"tenant_id": "acme", "attempt": 2, "value": [1, {"a": None}]})
    assert outcome(raw, job_id=JOB_ID, tenant_id="acme").value == [1, {"a": None}]


def test_success_with_null_value_is_a_success() -> None:
    raw = record("SUCCESS", {"tenant_id": "acme", "attempt": 1, "value": None})
    assert outcome(raw, job_id=JOB_ID, tenant_id="acme").value is None


def test_missing_record_is_not_found() -> None:
    with pytest.raises(ResultNotFound):
        outcome(None, job_id=JOB_ID, tenant_id="acme")


def test_success_of_another_tenant_is_not_found() -> None:
    raw = record("SUCCESS", {"tenant_id": "other", "attempt": 1, "value": 1})
    with pytest.raises(ResultNotFound):
        outcome(raw, job_id=JOB_ID, tenant_id="acme")


def test_task_failure_of_own_tenant_carries_the_error() -> None:
    with pytest.raises(JobFailed) as info:
        outcome(failure("acme", "KeyError", "no such user"), job_id=JOB_ID, tenant_id="acme")
    assert info.value.extra == {"error": {"type": "KeyError", "message": "no such user"}}


def test_task_failure_of_another_tenant_is_not_found() -> None:
    with pytest.raises(ResultNotFound):
        outcome(failure("other"), job_id=JOB_ID, tenant_id="acme")


def test_failure_celery_recorded_itself_is_not_found() -> None:
    raw = record(
        "FAILURE",
        {"exc_type": "TimeLimitExceeded", "exc_message": [30.0], "exc_module": "billiard"},
    )
    with pytest.raises(ResultNotFound):
        outcome(raw, job_id=JOB_ID, tenant_id="acme")


def test_revoked_is_not_found() -> None:
    raw = record("REVOKED", {"exc_type": "TaskRevokedError", "exc_message": ["revoked"]})
    with pytest.raises(ResultNotFound):
        outcome(raw, job_id=JOB_ID, tenant_id="acme")


@pytest.mark.parametrize("status", ["PENDING", "RECEIVED", "STARTED", "RETRY"])
def test_unready_states_are_not_finished(status: str) -> None:
    with pytest.raises(JobNotFinished):
        outcome(record(status, None), job_id=JOB_ID, tenant_id="acme")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'{"result": 1}', id="no-status"),
        pytest.param(record("SUCCESS", 42), id="success-not-a-stored-result"),
        pytest.param(record("SUCCESS", {"value": 1}), id="success-without-tenant"),
        pytest.param(record("FAILURE", "boom"), id="failure-not-an-exception-record"),
        pytest.param(
            record("FAILURE", {"exc_type": "TaskFailure", "exc_message": ["acme"]}),
            id="task-failure-wrong-arity",
        ),
        pytest.param(record("WEIRD", None), id="unknown-status"),
        pytest.param(
            record("SUCCESS", {"tenant_id": "acme", "attempt": 1, "value": 1}, str(uuid.uuid4())),
            id="other-task-id",
        ),
    ],
)
def test_malformed_records_are_unreadable(raw: bytes) -> None:
    with pytest.raises(StoredResultUnreadable):
        outcome(raw, job_id=JOB_ID, tenant_id="acme")
