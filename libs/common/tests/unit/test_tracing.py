"""conveyor_common.tracing: when it switches on, and the helpers every service uses, checked
with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from conveyor_common import tracing
from conveyor_common.logging import _add_trace_ids
from conveyor_common.settings import BaseServiceSettings
from conveyor_common.web import create_service_app

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PARENT_TRACE_ID = int("0af7651916cd43dd8448eb211c80319c", 16)
PARENT_SPAN_ID = int("b7ad6b7169203331", 16)


def _reset_global_provider() -> None:
    # The API lets a process set its provider once; tests put it back as they found it
    # (what opentelemetry's own test utilities do).
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()


@pytest.fixture
def global_exporter(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The provider also installed globally, where FastAPI's telemetry looks for it."""
    _reset_global_provider()
    assert tracing._provider is not None
    trace.set_tracer_provider(tracing._provider)
    yield exporter
    _reset_global_provider()


def _settings(**values: Any) -> BaseServiceSettings:
    return BaseServiceSettings(environment="development", **values)


# --- when tracing is on ---------------------------------------------------------------------


def test_off_by_default() -> None:
    assert not tracing.tracing_wanted(_settings(), environ={})


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_an_otlp_endpoint_switches_it_on(variable: str) -> None:
    assert tracing.tracing_wanted(_settings(), environ={variable: "http://collector:4318"})


def test_the_setting_wins_over_the_endpoint() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert not tracing.tracing_wanted(_settings(tracing_enabled=False), environ=environ)
    assert tracing.tracing_wanted(_settings(tracing_enabled=True), environ={})


def test_otel_sdk_disabled_wins_over_everything() -> None:
    environ = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert not tracing.tracing_wanted(_settings(tracing_enabled=True), environ=environ)


def test_sample_ratio_is_bounded() -> None:
    with pytest.raises(ValueError, match="tracing_sample_ratio"):
        _settings(tracing_sample_ratio=1.5)


def test_configure_does_nothing_when_not_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing.configure_tracing("job-service", _settings())
    assert not tracing.enabled()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


def test_configure_installs_the_sdk_with_the_service_name_and_sampler() -> None:
    exporter = InMemorySpanExporter()
    _reset_global_provider()
    try:
        on = tracing.configure_tracing(
            "job-service",
            _settings(tracing_enabled=True, tracing_sample_ratio=1.0),
            exporter=exporter,
        )
        assert on
        assert tracing.enabled()
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        assert "TraceIdRatioBased{1.0}" in provider.sampler.get_description()
        assert provider.sampler.get_description().startswith("ParentBased")
        with tracing.span("work"):
            pass
        tracing.flush()  # the batch processor holds spans until its delay or a flush
        (span,) = exporter.get_finished_spans()
        assert span.name == "work"
        assert span.resource.attributes["service.name"] == "job-service"
        assert span.resource.attributes["deployment.environment.name"] == "development"
        provider.shutdown()
    finally:
        tracing.uninstall()
        _reset_global_provider()


# --- the helpers ----------------------------------------------------------------------------


def test_off_the_helpers_do_nothing_and_allocate_nothing() -> None:
    assert tracing.span("a") is tracing.span("b", kind=SpanKind.CONSUMER)
    with tracing.span("a", traceparent=PARENT) as span:
        assert span is None
        assert tracing.current_traceparent() is None
        assert tracing.current_ids() is None
    headers: dict[str, str] = {}
    tracing.inject_headers(headers)
    assert headers == {}
    tracing.record_span("x", start_ns=1, end_ns=2, traceparent=PARENT)  # no error, no span


def test_current_traceparent_names_the_current_span(exporter: InMemorySpanExporter) -> None:
    with tracing.span("outer") as span:
        assert span is not None
        context = span.get_span_context()
        assert tracing.current_traceparent() == (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
        )
        assert context.trace_flags.sampled
        assert tracing.current_ids() == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert tracing.current_traceparent() is None


def test_a_traceparent_makes_the_span_its_child(exporter: InMemorySpanExporter) -> None:
    with tracing.span("task.run t", kind=SpanKind.CONSUMER, traceparent=PARENT):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.context is not None
    assert span.parent is not None
    assert span.context.trace_id == PARENT_TRACE_ID
    assert span.parent.span_id == PARENT_SPAN_ID
    assert span.parent.is_remote
    assert span.kind == SpanKind.CONSUMER


@pytest.mark.parametrize("bad", ["", "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_a_malformed_traceparent_starts_a_new_trace(
    exporter: InMemorySpanExporter, bad: str
) -> None:
    assert tracing.context_from_traceparent(bad) is None
    with tracing.span("task.run t", traceparent=bad):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_an_exception_marks_the_span_and_can_stay_unrecorded(
    exporter: InMemorySpanExporter,
) -> None:
    with pytest.raises(ValueError, match="tenant data"), tracing.span("recorded"):
        raise ValueError("tenant data")
    with (
        pytest.raises(ValueError, match="tenant data"),
        tracing.span("unrecorded", record_exception=False),
    ):
        raise ValueError("tenant data")
    recorded, unrecorded = exporter.get_finished_spans()
    assert recorded.status.status_code == trace.StatusCode.ERROR
    assert [event.name for event in recorded.events] == ["exception"]
    assert unrecorded.events == ()
    assert unrecorded.status.status_code == trace.StatusCode.UNSET


def test_record_span_after_the_fact(exporter: InMemorySpanExporter) -> None:
    tracing.record_span(
        "events.apply succeeded",
        start_ns=1_000,
        end_ns=5_000,
        traceparent=PARENT,
        kind=SpanKind.CONSUMER,
        attributes={"conveyor.attempt": 2},
    )
    tracing.record_span("ignored", start_ns=1, end_ns=2, traceparent=None)
    tracing.record_span("ignored", start_ns=1, end_ns=2, traceparent="nonsense")
    (span,) = exporter.get_finished_spans()
    assert (span.start_time, span.end_time) == (1_000, 5_000)
    assert span.parent is not None
    assert span.parent.span_id == PARENT_SPAN_ID
    assert span.attributes == {"conveyor.attempt": 2}


def test_inject_headers_carries_the_current_span(exporter: InMemorySpanExporter) -> None:
    headers: dict[str, str] = {}
    with tracing.span("call", kind=SpanKind.CLIENT):
        tracing.inject_headers(headers)
        assert headers["traceparent"] == tracing.current_traceparent()


def test_log_lines_carry_the_trace_and_span_ids(exporter: InMemorySpanExporter) -> None:
    assert _add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    with tracing.span("run") as span:
        assert span is not None
        line = _add_trace_ids(None, "info", {"event": "x"})
        context = span.get_span_context()
    assert line == {
        "event": "x",
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }


def test_log_lines_carry_nothing_when_tracing_is_off() -> None:
    assert _add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}


# --- the services' HTTP spans ---------------------------------------------------------------


def _app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_service_app("svc", title="t", lifespan=lifespan, readiness=lambda _r: {})

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str, request: Request) -> dict[str, str | None]:
        return {"id": thing_id, "traceparent": tracing.current_traceparent()}

    return app


async def test_a_request_gets_a_server_span_named_by_its_route(
    global_exporter: InMemorySpanExporter,
) -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        answer = await client.get("/things/secret-id?x=1", headers={"traceparent": PARENT})
        assert answer.status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200
    servers = [s for s in global_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    (server,) = servers  # probes and scrapes make none
    assert server.name == "GET /things/{thing_id}"
    assert server.context is not None
    assert server.context.trace_id == PARENT_TRACE_ID
    assert server.parent is not None
    assert server.parent.span_id == PARENT_SPAN_ID
    # The endpoint ran inside the request's trace.
    assert answer.json()["traceparent"].split("-")[1] == f"{PARENT_TRACE_ID:032x}"
