"""The task wrapper's logic, with an in-memory event sink (the Redis sink is exercised by the
integration tests)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel

from conveyor_common import limits
from conveyor_common.envelope import JobContext
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.results import StoredResult, TaskFailure
from conveyor_worker import PermanentError, TaskRegistry
from conveyor_worker.runner import run_job


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[LifecycleEvent]] = []

    def append(self, *events: LifecycleEvent) -> None:
        self.batches.append(list(events))

    @property
    def events(self) -> list[LifecycleEvent]:
        return [e for batch in self.batches for e in batch]

    @property
    def types(self) -> list[EventType]:
        return [e.type for e in self.events]


class NumberInput(BaseModel):
    n: int


registry = TaskRegistry()


@registry.task("double")
def double(args: NumberInput, ctx: JobContext) -> dict[str, Any]:
    return {"value": args.n * 2, "attempt": ctx.attempt, "key": ctx.idempotency_key}


@registry.task("explode")
def explode(args: NumberInput) -> None:
    raise KeyError(f"postgresql://app:s3cret@db/app row {args.n} " + "x" * 5_000)


@registry.task("refuse")
def refuse(args: NumberInput) -> None:
    raise PermanentError("never")


@registry.task("slow")
def slow(args: NumberInput) -> None:
    raise SoftTimeLimitExceeded()


@registry.task("odd_result")
def odd_result(args: NumberInput) -> Any:
    return {1: object()} if args.n else float("inf")


@registry.task("when")
def when(args: NumberInput) -> dict[str, Any]:
    return {"at": datetime(2030, 1, 2, 3, 4, 5), "id": uuid.UUID(int=args.n)}


@registry.task("later")
async def later(args: NumberInput) -> int:
    await asyncio.sleep(0)
    return args.n + 1


JOB_ID = uuid.UUID("0190d6c2-0000-7000-8000-000000000001")


def job(task: str, args: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    return {
        "job_id": str(JOB_ID),
        "tenant_id": "acme",
        "task": task,
        "attempt": 3,
        "args": {"n": 21} if args is None else args,
        "queue": "default",
        "timeout_seconds": 30,
        "idempotency_key": "idem-1",
        **overrides,
    }


def run(task: str, raw: Any, sink: RecordingSink) -> dict[str, Any]:
    return run_job(registry[task], raw, events=sink, worker="w1")


def test_success_returns_stored_result_and_three_events():
    sink = RecordingSink()
    result = run("double", job("double"), sink)
    assert result == StoredResult(
        tenant_id="acme", attempt=3, value={"value": 42, "attempt": 3, "key": "idem-1"}
    ).model_dump(mode="json")
    assert sink.types == [EventType.RECEIVED, EventType.STARTED, EventType.SUCCEEDED]
    # received and started share one round trip
    assert [len(b) for b in sink.batches] == [2, 1]
    assert all(
        (e.job_id, e.tenant_id, e.attempt, e.task, e.worker) == (JOB_ID, "acme", 3, "double", "w1")
        for e in sink.events
    )
    assert sink.events[-1].duration_ms is not None


def test_invalid_arguments_fail_permanently_without_running():
    sink = RecordingSink()
    with pytest.raises(TaskFailure) as caught:
        run("double", job("double", {"n": "lots", "password": "pw"}), sink)
    assert (caught.value.tenant_id, caught.value.error_type) == ("acme", "InvalidArguments")
    assert sink.types == [EventType.RECEIVED, EventType.FAILED]
    failed = sink.events[-1]
    assert failed.retryable is False
    assert "n:" in (failed.error_message or "")
    assert "lots" not in (failed.error_message or "")


def test_exception_reports_type_truncated_redacted_message_and_traceback():
    sink = RecordingSink()
    with pytest.raises(TaskFailure) as caught:
        run("explode", job("explode"), sink)
    assert caught.value.error_type == "KeyError"
    assert sink.types == [EventType.RECEIVED, EventType.STARTED, EventType.FAILED]
    failed = sink.events[-1]
    assert failed.error_type == "KeyError"
    assert failed.retryable is True
    assert len(failed.error_message or "") == limits.MAX_ERROR_MESSAGE_LENGTH
    assert "s3cret" not in (failed.error_message or "")
    assert "[REDACTED]" in (failed.error_message or "")
    assert len(failed.traceback or "") <= limits.MAX_TRACEBACK_LENGTH
    assert "s3cret" not in (failed.traceback or "")
    assert caught.value.message == failed.error_message


def test_permanent_error_is_not_retryable():
    sink = RecordingSink()
    with pytest.raises(TaskFailure):
        run("refuse", job("refuse"), sink)
    assert (sink.events[-1].error_type, sink.events[-1].retryable) == ("PermanentError", False)


def test_soft_time_limit_is_reported_as_time_limit_exceeded():
    sink = RecordingSink()
    with pytest.raises(TaskFailure) as caught:
        run("slow", job("slow"), sink)
    assert caught.value.error_type == "TimeLimitExceeded"
    assert sink.events[-1].retryable is True


@pytest.mark.parametrize("n", [0, 1])
def test_result_that_is_not_json_fails(n):
    sink = RecordingSink()
    with pytest.raises(TaskFailure) as caught:
        run("odd_result", job("odd_result", {"n": n}), sink)
    assert caught.value.error_type == "ResultNotSerializable"
    assert sink.events[-1].retryable is False


def test_json_friendly_values_are_converted():
    result = run("when", job("when", {"n": 7}), RecordingSink())
    assert result["value"] == {
        "at": "2030-01-02T03:04:05",
        "id": "00000000-0000-0000-0000-000000000007",
    }


def test_async_task():
    assert run("later", job("later"), RecordingSink())["value"] == 22


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "not a dict",
        {"job_id": "nope"},
        job("double", timeout_seconds=None),
        job("other-task"),  # envelope for another task than the message names
    ],
)
def test_invalid_envelope_fails_with_invalid_envelope(raw):
    sink = RecordingSink()
    with pytest.raises(TaskFailure) as caught:
        run("double", raw, sink)
    assert caught.value.error_type == "InvalidEnvelope"
    if isinstance(raw, dict) and "attempt" in raw:
        # enough to identify the attempt: it is reported
        assert sink.types == [EventType.RECEIVED, EventType.FAILED]
        assert sink.events[-1].retryable is False
    else:
        assert sink.events == []
