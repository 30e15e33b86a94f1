"""The task run's span and the trace context its lifecycle events carry, with the SDK's
in-memory exporter (tracing on) and with tracing off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from conveyor_common import tracing
from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType, LifecycleEvent
from conveyor_common.results import TaskFailure
from conveyor_worker import TaskRegistry
from conveyor_worker.events import PipelineOp
from conveyor_worker.leases import HeldAttempt, Skipped, lease_value
from conveyor_worker.runner import AttemptSkipped, run_job

SUBMIT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SUBMIT_TRACE_ID = int("4bf92f3577b34da6a3ce929d0e0e4736", 16)
SUBMIT_SPAN_ID = int("00f067aa0ba902b7", 16)
JOB_ID = uuid.UUID("0190d6c2-0000-7000-8000-0000000000aa")


class Sink:
    def __init__(self) -> None:
        self.events: list[LifecycleEvent] = []

    def append(self, *events: LifecycleEvent, then: Sequence[PipelineOp] = ()) -> None:
        self.events.extend(events)


class Grant:
    """Grants every attempt (or refuses all), passing the started events on as Redis would."""

    def __init__(self, sink: Sink, *, refuse: bool = False) -> None:
        self.sink = sink
        self.refuse = refuse

    def acquire(
        self, envelope: TaskEnvelope, worker: str | None, started: Sequence[LifecycleEvent]
    ) -> HeldAttempt | Skipped:
        if self.refuse:
            return Skipped("already-started")
        self.sink.append(*started)
        return HeldAttempt(str(envelope.job_id), envelope.attempt, lease_value(1, worker))


class Args(BaseModel):
    secret: str


registry = TaskRegistry()


@registry.task("ok")
def ok(args: Args) -> str:
    return "done"


@registry.task("boom")
def boom(args: Args) -> None:
    raise RuntimeError(f"failed with {args.secret}")


def message(task: str, **overrides: Any) -> dict[str, Any]:
    return {
        "job_id": str(JOB_ID),
        "tenant_id": "acme",
        "task": task,
        "attempt": 2,
        "args": {"secret": "hunter2"},
        "queue": "reports",
        "timeout_seconds": 30,
        "traceparent": SUBMIT,
        **overrides,
    }


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()


def test_the_run_is_a_consumer_span_under_the_submit_span(
    exporter: InMemorySpanExporter,
) -> None:
    sink = Sink()
    run_job(registry["ok"], message("ok"), events=sink, attempts=Grant(sink), worker="w1")

    (span,) = exporter.get_finished_spans()
    assert span.name == "task.run ok"
    assert span.kind == SpanKind.CONSUMER
    assert span.context is not None
    assert span.context.trace_id == SUBMIT_TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == SUBMIT_SPAN_ID
    assert span.attributes == {
        "conveyor.job.id": str(JOB_ID),
        "conveyor.task": "ok",
        "conveyor.attempt": 2,
        "conveyor.queue": "reports",
        "messaging.system": "celery",
        "messaging.operation.type": "process",
        "messaging.destination.name": "reports",
        "conveyor.outcome": "succeeded",
    }
    # Every event of the attempt names the run's span, so job-service's spans join the trace.
    run = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    assert [e.type for e in sink.events] == [
        EventType.RECEIVED,
        EventType.STARTED,
        EventType.SUCCEEDED,
    ]
    assert {e.traceparent for e in sink.events} == {run}


def test_a_failed_run_is_an_error_span_without_the_message(
    exporter: InMemorySpanExporter,
) -> None:
    sink = Sink()
    with pytest.raises(TaskFailure):
        run_job(registry["boom"], message("boom"), events=sink, attempts=Grant(sink))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "RuntimeError"
    assert span.attributes["conveyor.outcome"] == "failed"
    # The error's text is the tenant's (here it quotes an argument): not in the trace.
    assert span.events == ()
    assert "hunter2" not in str(span.to_json())


def test_a_skipped_run_is_not_an_error(exporter: InMemorySpanExporter) -> None:
    sink = Sink()
    with pytest.raises(AttemptSkipped):
        run_job(registry["ok"], message("ok"), events=sink, attempts=Grant(sink, refuse=True))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["conveyor.outcome"] == "skipped"
    assert span.attributes["conveyor.skip_reason"] == "already-started"


def test_a_message_without_context_starts_a_trace(exporter: InMemorySpanExporter) -> None:
    sink = Sink()
    raw = message("ok", traceparent=None)
    run_job(registry["ok"], raw, events=sink, attempts=Grant(sink))
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_tracing_off_events_pass_the_messages_context_on() -> None:
    """A worker without tracing still lets job-service's spans join the job's trace."""
    sink = Sink()
    run_job(registry["ok"], message("ok"), events=sink, attempts=Grant(sink))
    assert {e.traceparent for e in sink.events} == {SUBMIT}
    sink = Sink()
    run_job(registry["ok"], message("ok", traceparent=None), events=sink, attempts=Grant(sink))
    assert {e.traceparent for e in sink.events} == {None}
    assert "traceparent" not in sink.events[0].to_stream_fields()["e"]
