"""Tracing in job-service, on both databases: the submit span's context is stored with each job
and put in every message the relay publishes; an applied outcome event gets a span in the
job's trace. The SDK's in-memory exporter stands in for OTLP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conveyor_common import tracing
from conveyor_common.events import EventType
from conveyor_common.statuses import JobStatus

WORKER_SPAN = "00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-01"
WORKER_SPAN_ID = int("10f067aa0ba902b7", 16)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()


def traceparent_of(span: ReadableSpan) -> str:
    assert span.context is not None
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def envelopes(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["headers"]["id"]: m["decoded_body"][1]["job"] for m in messages}


async def test_every_message_carries_the_submit_spans_context(
    quiet_harness: Any, exporter: InMemorySpanExporter
) -> None:
    h = quiet_harness
    one = (await h.submit({"task": "echo", "args": {"x": 1}})).json()
    batch = (
        await h.client.post("/internal/v1/jobs/batch", json={"jobs": [{"task": "noop"}] * 2})
    ).json()["jobs"]
    assert await h.app.state.relay.publish_once() == 3

    single, many = exporter.get_finished_spans()
    assert (single.name, single.kind) == ("jobs.submit", SpanKind.PRODUCER)
    assert single.attributes == {
        "conveyor.job.id": one["id"],
        "conveyor.task": "echo",
        "conveyor.jobs": 1,
    }
    assert many.attributes == {"conveyor.jobs": 2}

    published = envelopes(await h.queue_messages())
    assert published[one["id"]]["traceparent"] == traceparent_of(single)
    # One trace per request: a batch's jobs share its span.
    assert {published[j["id"]]["traceparent"] for j in batch} == {traceparent_of(many)}
    assert (await h.job(one["id"])).traceparent == traceparent_of(single)


async def test_without_tracing_nothing_is_stored_or_sent(quiet_harness: Any) -> None:
    h = quiet_harness
    job = (await h.submit({"task": "echo", "args": {"x": 1}})).json()
    assert await h.app.state.relay.publish_once() == 1
    assert envelopes(await h.queue_messages())[job["id"]]["traceparent"] is None
    assert (await h.job(job["id"])).traceparent is None


async def test_an_applied_outcome_is_a_span_under_the_workers(
    quiet_harness: Any, exporter: InMemorySpanExporter
) -> None:
    h = quiet_harness
    job_id = (await h.submit({"task": "echo", "args": {"x": 1}})).json()["id"]
    assert await h.app.state.relay.publish_once() == 1
    exporter.clear()

    traced = {"traceparent": WORKER_SPAN}
    await h.report(
        h.event(job_id, EventType.RECEIVED, **traced),
        h.event(job_id, EventType.STARTED, **traced),
        h.event(job_id, EventType.SUCCEEDED, duration_ms=3.0, **traced),
        # A late duplicate changes nothing, so it gets no span.
        h.event(job_id, EventType.SUCCEEDED, duration_ms=3.0, **traced),
    )
    assert (await h.job(job_id)).status == JobStatus.SUCCEEDED

    (span,) = exporter.get_finished_spans()
    assert span.name == "events.apply succeeded"
    assert span.kind == SpanKind.CONSUMER
    assert span.parent is not None
    assert span.parent.span_id == WORKER_SPAN_ID
    assert span.attributes == {
        "conveyor.job.id": job_id,
        "conveyor.attempt": 1,
        "conveyor.job.status": "SUCCEEDED",
        "conveyor.events_batch_size": 4,
    }
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= span.end_time
