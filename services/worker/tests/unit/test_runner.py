"""The task wrapper's logic, with an in-memory event sink and attempt fence (the Redis ones are
exercised by the integration tests)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel

from conveyor_common import limits
from conveyor_common.envelope import JobContext, TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.results import StoredResult, TaskFailure
from conveyor_worker import PermanentError, TaskInterrupted, TaskRegistry
from conveyor_worker.events import PipelineOp
from conveyor_worker.leases import HeldAttempt, Skipped, lease_value
from conveyor_worker.runner import AttemptSkipped, run_job


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[LifecycleEvent]] = []

    def append(self, *events: LifecycleEvent, then: Sequence[PipelineOp] = ()) -> None:
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


RAN: list[int] = []


@registry.task("count")
def count(args: NumberInput) -> int:
    RAN.append(args.n)
    return args.n


@registry.task("nap")
def nap(args: NumberInput) -> str:
    """Blocks in one long sleep: only a signal can cut it short."""
    time.sleep(args.n)
    return "woke up"


@registry.task("spin")
def spin(args: NumberInput) -> str:
    """Runs Python code until stopped (or `n` seconds pass)."""
    deadline = time.monotonic() + args.n
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "spun"


@registry.task("stubborn")
def stubborn(args: NumberInput) -> None:
    try:
        time.sleep(args.n)
    except TaskInterrupted:
        raise RuntimeError("cleanup failed") from None


class LocalAttempts:
    """The attempt fence in memory: each (job, attempt) is granted once, never after a higher
    one, never for a cancelled job; granted attempts' `started` events go to the sink."""

    def __init__(self, sink: RecordingSink) -> None:
        self.sink = sink
        self.fence: dict[uuid.UUID, int] = {}
        self.cancelled: set[uuid.UUID] = set()
        self.held: list[HeldAttempt] = []
        self.granted = threading.Event()

    def acquire(
        self, envelope: TaskEnvelope, worker: str | None, started: Sequence[LifecycleEvent]
    ) -> HeldAttempt | Skipped:
        if envelope.job_id in self.cancelled:
            return Skipped("cancelled")
        if self.fence.get(envelope.job_id, 0) >= envelope.attempt:
            return Skipped("already-started")
        self.fence[envelope.job_id] = envelope.attempt
        self.sink.append(*started)
        held = HeldAttempt(
            str(envelope.job_id), envelope.attempt, lease_value(envelope.attempt, worker)
        )
        self.held.append(held)
        self.granted.set()
        return held

    def stop_soon(self, reason: str) -> threading.Thread:
        """Stops the next granted attempt once its task runs, as the heartbeat would."""

        def stop() -> None:
            assert self.granted.wait(10)
            while not self.held[-1].stop(reason):
                time.sleep(0.01)  # until the task's region is open

        thread = threading.Thread(target=stop, daemon=True)
        thread.start()
        return thread


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


def run(
    task: str, raw: Any, sink: RecordingSink, attempts: LocalAttempts | None = None
) -> dict[str, Any]:
    guard = attempts or LocalAttempts(sink)
    return run_job(registry[task], raw, events=sink, attempts=guard, worker="w1")


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
    attempts = LocalAttempts(sink)
    with pytest.raises(TaskFailure) as caught:
        run("double", job("double", {"n": "lots", "password": "pw"}), sink, attempts)
    assert attempts.fence == {}  # decided before the fence: nothing to hold
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


def test_an_attempt_runs_once_and_its_redelivery_is_skipped():
    RAN.clear()
    sink = RecordingSink()
    attempts = LocalAttempts(sink)
    assert run("count", job("count", {"n": 1}), sink, attempts)["value"] == 1
    assert attempts.held[0].value == "3:w1"
    with pytest.raises(AttemptSkipped) as caught:
        run("count", job("count", {"n": 1}), sink, attempts)
    assert caught.value.reason == "already-started"
    assert RAN == [1]
    assert sink.types == [
        EventType.RECEIVED,
        EventType.STARTED,
        EventType.SUCCEEDED,
        EventType.SKIPPED,
    ]
    skipped = sink.events[-1]
    assert (skipped.attempt, skipped.error_message, skipped.worker) == (3, "already-started", "w1")
    # An older attempt arriving late is skipped too; the next one runs.
    with pytest.raises(AttemptSkipped):
        run("count", job("count", {"n": 2}, attempt=2), sink, attempts)
    run("count", job("count", {"n": 4}, attempt=4), sink, attempts)
    assert RAN == [1, 4]


def test_a_cancelled_job_is_skipped_without_running():
    RAN.clear()
    sink = RecordingSink()
    attempts = LocalAttempts(sink)
    attempts.cancelled.add(JOB_ID)
    with pytest.raises(AttemptSkipped) as caught:
        run("count", job("count"), sink, attempts)
    assert caught.value.reason == "cancelled"
    assert RAN == []
    assert [(e.type, e.error_message) for e in sink.events] == [(EventType.SKIPPED, "cancelled")]


def cancelled_failure(task: str, seconds: int, reason: str = "cancelled") -> TaskFailure:
    sink = RecordingSink()
    attempts = LocalAttempts(sink)
    stopper = attempts.stop_soon(reason)
    with pytest.raises(TaskFailure) as caught:
        run(task, job(task, {"n": seconds}), sink, attempts)
    stopper.join(10)
    assert sink.types == [EventType.RECEIVED, EventType.STARTED, EventType.FAILED]
    assert sink.events[-1].error_type == caught.value.error_type
    assert sink.events[-1].retryable is False
    return caught.value


def test_cancel_interrupts_a_blocking_call_on_the_main_thread():
    # The main thread is where a prefork child or the solo pool runs tasks: a signal stops
    # even a long sleep.
    failure = cancelled_failure("nap", 60)
    assert failure.error_type == "Cancelled"
    assert failure.message == "the job was cancelled while it ran"


def test_cancel_interrupts_python_code_on_another_thread():
    # The threads pool: the exception is raised at the task's next Python instruction.
    outcome: list[TaskFailure] = []
    thread = threading.Thread(target=lambda: outcome.append(cancelled_failure("spin", 60)))
    thread.start()
    thread.join(30)
    assert [f.error_type for f in outcome] == ["Cancelled"]


def test_a_task_that_turns_the_interruption_into_its_own_error_is_still_cancelled():
    assert cancelled_failure("stubborn", 60).error_type == "Cancelled"


def test_losing_the_lease_stops_the_task_and_leaves_the_outcome_to_the_holder():
    # Another attempt, or another copy of this one, holds the job now: this copy reports a skip
    # and no outcome (Celery stores nothing for it).
    sink = RecordingSink()
    attempts = LocalAttempts(sink)
    stopper = attempts.stop_soon("lease-lost")
    with pytest.raises(AttemptSkipped) as caught:
        run("nap", job("nap", {"n": 60}), sink, attempts)
    stopper.join(10)
    assert caught.value.reason == "lease-lost"
    assert sink.types == [EventType.RECEIVED, EventType.STARTED, EventType.SKIPPED]
    assert sink.events[-1].error_message == "lease-lost"


def test_an_interrupt_after_the_task_returned_is_dropped():
    sink = RecordingSink()
    attempts = LocalAttempts(sink)
    assert run("count", job("count", {"n": 5}), sink, attempts)["value"] == 5
    assert attempts.held[0].stop("cancelled") is False  # its region is closed
    time.sleep(0.1)  # a stray signal or async exception would surface here
    assert attempts.held[0].cancelled
