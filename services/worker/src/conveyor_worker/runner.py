"""Running one job: the whole task wrapper as a plain function, testable without Celery.

validate the envelope → validate the arguments → pass the attempt fence (one Lua script that
also appends `received` + `started`; a redelivered or cancelled attempt gets `skipped` instead)
→ run, interruptible by the lease heartbeat → `succeeded` or `failed`. Success returns the
`StoredResult` to store; failure raises `TaskFailure`, so the FAILURE record names the tenant.
Under Celery the sink holds the final event back (`events.DeferredFinalSink`) and the task's
hooks write it with the result record and the lease release in one round trip (`outcome.py`).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Sequence
from typing import Any, Protocol

import redis
import structlog
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from conveyor_common import limits, tracing
from conveyor_common.envelope import JobContext, TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent, truncate
from conveyor_common.logging import redact_text
from conveyor_common.results import StoredResult, TaskFailure
from conveyor_worker.errors import PermanentError
from conveyor_worker.events import EventSink, make_event
from conveyor_worker.leases import LEASE_LOST, HeldAttempt, Skipped
from conveyor_worker.metrics import BUSY_SLOTS, JOB_RUN_DURATION, TASKS, Outcome
from conveyor_worker.registry import RegisteredTask

log = structlog.get_logger("conveyor.worker")

INVALID_ENVELOPE = "InvalidEnvelope"
INVALID_ARGUMENTS = "InvalidArguments"
TIME_LIMIT_EXCEEDED = "TimeLimitExceeded"
RESULT_NOT_SERIALIZABLE = "ResultNotSerializable"
UNKNOWN_TASK = "UnknownTask"
CANCELLED = "Cancelled"


class Failure(BaseModel):
    """What a failed event says about the error."""

    error_type: str
    message: str
    traceback: str | None = None
    retryable: bool = True

    @classmethod
    def from_exception(cls, exc: BaseException, *, error_type: str | None = None) -> Failure:
        text = "".join(traceback.format_exception(exc))
        return cls(
            error_type=truncate(error_type or type(exc).__name__, limits.MAX_NAME_LENGTH) or "",
            message=clean_message(str(exc) or type(exc).__name__),
            traceback=_tail(
                redact_text(text[-2 * limits.MAX_TRACEBACK_LENGTH :]), limits.MAX_TRACEBACK_LENGTH
            ),
            retryable=not isinstance(exc, PermanentError),
        )


def clean_message(message: str) -> str:
    # Error text often quotes URLs and DSNs; it is stored and shown, so secrets go first. The
    # first cut bounds the work on a huge message; whatever it splits lies past the final cut.
    limit = limits.MAX_ERROR_MESSAGE_LENGTH
    return truncate(redact_text(message[: 2 * limit]), limit) or ""


def _tail(text: str, limit: int) -> str:
    """The end of a traceback is where the error is, so that is the part kept."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def describe_validation_error(exc: ValidationError) -> str:
    # The offending input values are left out: arguments may carry secrets.
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )


def parse_envelope(raw_job: object, task_name: str) -> TaskEnvelope:
    envelope = TaskEnvelope.model_validate(raw_job)
    if envelope.task != task_name:
        raise ValueError(f"the envelope names task {envelope.task!r}, the message {task_name!r}")
    return envelope


def identity(envelope: TaskEnvelope, worker: str | None) -> dict[str, Any]:
    """The fields every event of this attempt carries. The trace context is the task run's
    span, else the message's own, so job-service's spans for the events join the job's trace."""
    ident = {
        "job_id": envelope.job_id,
        "tenant_id": envelope.tenant_id,
        "attempt": envelope.attempt,
        "task": envelope.task,
        "worker": worker,
    }
    traceparent = tracing.current_traceparent() or envelope.traceparent
    if traceparent is not None:
        ident["traceparent"] = traceparent
    return ident


def report_failure(
    events: EventSink,
    ident: dict[str, Any],
    failure: Failure,
    *,
    received: bool = False,
    duration_ms: float | None = None,
) -> None:
    """Appends a failed event (after a `received` one when asked), in one round trip."""
    failed = make_event(
        EventType.FAILED,
        **ident,
        duration_ms=duration_ms,
        error_type=failure.error_type,
        error_message=failure.message,
        traceback=failure.traceback,
        retryable=failure.retryable,
    )
    if received:
        events.append(make_event(EventType.RECEIVED, **ident), failed)
    else:
        events.append(failed)


def _report_invalid_envelope(
    raw_job: object, exc: Exception, events: EventSink, task_name: str, worker: str | None
) -> TaskFailure:
    message = clean_message(
        describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    )
    raw = raw_job if isinstance(raw_job, dict) else {}
    tenant_id = str(raw.get("tenant_id") or "")
    log.error("jobs.invalid_envelope", task=task_name, error=message)
    failure = Failure(error_type=INVALID_ENVELOPE, message=message, retryable=False)
    try:
        # Best effort: an event needs at least the job, tenant and attempt to be applied.
        ident = {
            "job_id": raw["job_id"],
            "tenant_id": raw["tenant_id"],
            "attempt": raw["attempt"],
            "task": task_name,
            "worker": worker,
        }
        report_failure(events, ident, failure, received=True)
    except (KeyError, ValidationError):
        pass
    return TaskFailure(tenant_id, INVALID_ENVELOPE, message)


def _json_result(envelope: TaskEnvelope, value: Any) -> dict[str, Any]:
    # pydantic would quietly turn NaN and Infinity into null; they are not JSON, and
    # PostgreSQL's jsonb and most clients refuse them, so they fail the attempt instead.
    jsonable = to_jsonable_python(value, inf_nan_mode="constants")
    json.dumps(jsonable, allow_nan=False)
    stored = StoredResult(tenant_id=envelope.tenant_id, attempt=envelope.attempt, value=jsonable)
    payload: dict[str, Any] = stored.model_dump(mode="json")
    return payload


class AttemptGuard(Protocol):
    """Decides whether an attempt may run (`leases.LeaseKeeper`, through the Celery task)."""

    def acquire(
        self, envelope: TaskEnvelope, worker: str | None, started: Sequence[LifecycleEvent]
    ) -> HeldAttempt | Skipped: ...


class AttemptSkipped(Exception):
    """The message was not run (its job was cancelled, or its attempt already started); the
    `skipped` event is written. Celery must ack it and store nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run_job(
    task: RegisteredTask,
    raw_job: object,
    *,
    events: EventSink,
    attempts: AttemptGuard,
    worker: str | None = None,
) -> dict[str, Any]:
    """Runs `task` for the message's `job` kwarg; returns the JSON-ready `StoredResult` or raises
    `TaskFailure` after appending a failed event, or `AttemptSkipped` after a skipped one.
    `LeaseUnavailable` (from `attempts`) means nothing was decided: the message should come
    back later."""
    try:
        envelope = parse_envelope(raw_job, task.name)
    except (ValidationError, ValueError) as exc:
        raise _report_invalid_envelope(raw_job, exc, events, task.name, worker) from None
    if not tracing.enabled():
        return _run_envelope(task, envelope, events=events, attempts=attempts, worker=worker)
    return _run_traced(task, envelope, events=events, attempts=attempts, worker=worker)


def _run_traced(
    task: RegisteredTask,
    envelope: TaskEnvelope,
    *,
    events: EventSink,
    attempts: AttemptGuard,
    worker: str | None,
) -> dict[str, Any]:
    """`_run_envelope` inside a consumer span, the child of the submit span the message names
    (a retried attempt's message names the same one: one trace per job)."""
    with tracing.span(
        f"task.run {task.name}",
        kind=tracing.SpanKind.CONSUMER,
        traceparent=envelope.traceparent,
        attributes={
            "conveyor.job.id": str(envelope.job_id),
            "conveyor.task": task.name,
            "conveyor.attempt": envelope.attempt,
            "conveyor.queue": envelope.queue,
            "messaging.system": "celery",
            "messaging.operation.type": "process",
            "messaging.destination.name": envelope.queue,
        },
        # Error messages are the tenant's; the span gets the error type only.
        record_exception=False,
    ) as span:
        assert span is not None  # tracing is on
        try:
            result = _run_envelope(task, envelope, events=events, attempts=attempts, worker=worker)
        except TaskFailure as exc:
            span.set_attribute("conveyor.outcome", "failed")
            span.set_attribute("error.type", exc.error_type)
            span.set_status(tracing.StatusCode.ERROR)
            raise
        except AttemptSkipped as exc:
            span.set_attribute("conveyor.outcome", "skipped")
            span.set_attribute("conveyor.skip_reason", exc.reason)
            raise
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(tracing.StatusCode.ERROR)
            raise
        span.set_attribute("conveyor.outcome", "succeeded")
        return result


def _run_envelope(
    task: RegisteredTask,
    envelope: TaskEnvelope,
    *,
    events: EventSink,
    attempts: AttemptGuard,
    worker: str | None,
) -> dict[str, Any]:
    with structlog.contextvars.bound_contextvars(
        job_id=str(envelope.job_id), tenant=envelope.tenant_id, task=task.name
    ):
        try:
            args = task.parse_args(envelope.args)
        except ValidationError as exc:
            # Before the fence: these arguments fail the same way on every delivery, and a
            # second `failed` event for the attempt changes nothing in job-service.
            failure = Failure(
                error_type=INVALID_ARGUMENTS,
                message=clean_message(describe_validation_error(exc)),
                retryable=False,
            )
            report_failure(events, identity(envelope, worker), failure, received=True)
            TASKS.labels(task.name, envelope.queue, Outcome.FAILED).inc()
            log.warning("jobs.invalid_arguments", attempt=envelope.attempt, error=failure.message)
            raise TaskFailure(envelope.tenant_id, failure.error_type, failure.message) from None
        common = identity(envelope, worker)
        started = (
            make_event(EventType.RECEIVED, **common),
            make_event(EventType.STARTED, **common),
        )
        claim = attempts.acquire(envelope, worker, started)
        if isinstance(claim, Skipped):
            _report_skip(events, envelope, common, claim.reason)
            raise AttemptSkipped(claim.reason)
        return _run_validated(task, envelope, args, claim, events=events, common=common)


def _report_skip(
    events: EventSink, envelope: TaskEnvelope, common: dict[str, Any], reason: str
) -> None:
    TASKS.labels(envelope.task, envelope.queue, Outcome.SKIPPED).inc()
    log.info("jobs.skipped", attempt=envelope.attempt, reason=reason)
    try:
        events.append(make_event(EventType.SKIPPED, **common, error_message=reason))
    except redis.RedisError as exc:
        # Only a record: the skip itself is already decided, and storing anything in Celery's
        # result backend now could overwrite the outcome of the attempt that did run.
        log.warning("jobs.skip_unreported", attempt=envelope.attempt, error=str(exc))


def _cancelled_failure(exc: BaseException, held: HeldAttempt) -> Failure | None:
    """The failure to report for a task stopped because its job was cancelled, else None."""
    if not held.cancelled:
        return None
    failure = Failure.from_exception(exc, error_type=CANCELLED)
    failure.message = "the job was cancelled while it ran"
    failure.retryable = False
    return failure


def _run_validated(
    task: RegisteredTask,
    envelope: TaskEnvelope,
    args: BaseModel,
    held: HeldAttempt,
    *,
    events: EventSink,
    common: dict[str, Any],
) -> dict[str, Any]:
    ctx = JobContext(
        job_id=envelope.job_id,
        tenant_id=envelope.tenant_id,
        attempt=envelope.attempt,
        idempotency_key=envelope.idempotency_key,
    )
    queue = envelope.queue
    log.info("jobs.started", attempt=envelope.attempt)
    start = time.perf_counter()
    failure: Failure | None = None
    BUSY_SLOTS.inc()
    try:
        with held.interruptible:
            value = task.call(args, ctx)
    except SoftTimeLimitExceeded as exc:  # also TaskInterrupted, the heartbeat's stop
        failure = _cancelled_failure(exc, held)
        if failure is None:
            failure = Failure.from_exception(exc, error_type=TIME_LIMIT_EXCEEDED)
            failure.message = clean_message(f"the task ran past its soft time limit ({exc})")
    except Exception as exc:
        # A task that turned the interruption into its own error was still stopped by us.
        failure = (
            _cancelled_failure(exc, held) if held.interruptible.fired else None
        ) or Failure.from_exception(exc)
    else:
        try:
            payload = _json_result(envelope, value)
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            failure = Failure.from_exception(exc, error_type=RESULT_NOT_SERIALIZABLE)
            failure.retryable = False  # the same code returns the same value next time
    finally:
        BUSY_SLOTS.dec()
    seconds = time.perf_counter() - start
    duration_ms = round(seconds * 1000, 3)
    JOB_RUN_DURATION.labels(task.name, queue).observe(seconds)

    if held.lost and not held.cancelled:
        # Another holder has this job now: a later attempt (whose outcome is the one that
        # counts), or another copy of this attempt after Redis lost the fence (which reports
        # the outcome of this very attempt). Either way this copy reports and stores nothing.
        _report_skip(events, envelope, common, LEASE_LOST)
        raise AttemptSkipped(LEASE_LOST)

    if failure is not None:
        report_failure(events, common, failure, duration_ms=duration_ms)
        outcome = Outcome.CANCELLED if failure.error_type == CANCELLED else Outcome.FAILED
        TASKS.labels(task.name, queue, outcome).inc()
        log.warning(
            "jobs.failed",
            attempt=envelope.attempt,
            error_type=failure.error_type,
            error=failure.message,
            retryable=failure.retryable,
            duration_ms=duration_ms,
        )
        raise TaskFailure(envelope.tenant_id, failure.error_type, failure.message)

    events.append(make_event(EventType.SUCCEEDED, **common, duration_ms=duration_ms))
    TASKS.labels(task.name, queue, Outcome.SUCCEEDED).inc()
    log.info("jobs.succeeded", attempt=envelope.attempt, duration_ms=duration_ms)
    return payload
