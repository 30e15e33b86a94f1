"""OpenTelemetry tracing: `configure_tracing(service, settings)` for every service and the
worker, and the few helpers the code paths use.

One trace per job: the gateway's request span → its call to job-service → job-service's
`jobs.submit` span, whose W3C `traceparent` is stored with the job and travels in every Celery
message's envelope → the worker's `task.run <task>` span (a child of it) → the lifecycle events
it appends, which carry the worker span's `traceparent` → job-service's `events.apply <type>`
span. HTTP server spans come from FastAPI's own telemetry, which starts working as soon as a
global tracer provider exists.

Off by default. Then no SDK provider is installed, nothing here makes a span or an object: each
helper returns after one check of a module variable, so the hot paths pay a function call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata
from typing import TYPE_CHECKING

import structlog
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from conveyor_common.settings import BaseServiceSettings

__all__ = [
    "SpanKind",
    "StatusCode",
    "configure_tracing",
    "context_from_traceparent",
    "current_ids",
    "current_traceparent",
    "enabled",
    "flush",
    "inject_headers",
    "install",
    "record_span",
    "span",
    "tracing_wanted",
    "uninstall",
]

log = structlog.get_logger("conveyor.tracing")

TRACER_NAME = "conveyor"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

# Envelopes and lifecycle events always carry W3C's format, whatever OTEL_PROPAGATORS says for
# HTTP: the field is named `traceparent`, and job-service and workers must agree on it.
_W3C = TraceContextTextMapPropagator()
# Reusable and stateless: what `span()` hands out while tracing is off (it yields None).
_NO_SPAN: AbstractContextManager[None] = nullcontext()

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def enabled() -> bool:
    return _tracer is not None


def tracing_wanted(settings: BaseServiceSettings, environ: Mapping[str, str] | None = None) -> bool:
    """On when `CONVEYOR_TRACING_ENABLED` says so, or, left unset, when an OTLP endpoint is
    configured; never with the standard `OTEL_SDK_DISABLED=true`."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if settings.tracing_enabled is not None:
        return settings.tracing_enabled
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure_tracing(
    service_name: str, settings: BaseServiceSettings, *, exporter: SpanExporter | None = None
) -> bool:
    """Installs the SDK with an OTLP/HTTP (protobuf) exporter behind a batch processor, when
    tracing is wanted; returns whether it is on. The exporter, the batch processor, the sampler
    and the resource read the standard `OTEL_*` variables (endpoint, headers, timeout,
    `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_RESOURCE_ATTRIBUTES`);
    `CONVEYOR_TRACING_SAMPLE_RATIO` overrides the sampler. A provider that something else
    installed first (an OpenTelemetry distro, `opentelemetry-instrument`) is used as it is."""
    if not tracing_wanted(settings):
        return False
    # Imported here: a deployment without tracing never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider):
        install(existing)
        log.info("tracing.configured", service=service_name, provider="existing")
        return True
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "conveyor",
            "service.version": _version(),
            "deployment.environment.name": settings.environment,
        }
    )
    sampler = (
        ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio))
        if settings.tracing_sample_ratio is not None
        else None  # the SDK's choice from OTEL_TRACES_SAMPLER, parentbased_always_on by default
    )
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    install(provider)
    log.info(
        "tracing.configured",
        service=service_name,
        exporter=type(exporter).__name__,
        # Only the variable's name: an endpoint URL may carry credentials.
        endpoint_from=next((n for n in ENDPOINT_VARIABLES if os.environ.get(n)), "default"),
        sampler=provider.sampler.get_description(),
    )
    return True


def install(provider: TracerProvider) -> None:
    """Makes the helpers below use `provider` (tests install one with an in-memory exporter)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME, _version())


def uninstall() -> None:
    """Back to off (tests)."""
    global _tracer, _provider
    _tracer = None
    _provider = None


def flush(timeout_millis: int = 5_000) -> None:
    """Exports what the batch processor holds: a Celery pool child exits without running
    `atexit`, so its last spans would be lost otherwise."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    traceparent: str | None = None,
    record_exception: bool = True,
) -> AbstractContextManager[Span | None]:
    """A current span for the `with` block (None while tracing is off). With `traceparent` the
    span is its child (a message's context) instead of the current span's. An exception leaving
    the block is recorded on the span and marks it failed, unless `record_exception` is False:
    then the caller says how it ended (an exception's message may be a tenant's data)."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    parent = context_from_traceparent(traceparent) if traceparent else None
    return tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        record_exception=record_exception,
        set_status_on_exception=record_exception,
    )


def record_span(
    name: str,
    *,
    start_ns: int,
    end_ns: int,
    traceparent: str | None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> None:
    """A span whose times are known only afterwards (one per event of a committed batch),
    the child of `traceparent`'s span; nothing without a valid one."""
    tracer = _tracer
    if tracer is None or not traceparent:
        return
    parent = context_from_traceparent(traceparent)
    if parent is None:
        return
    tracer.start_span(
        name, context=parent, kind=kind, attributes=attributes, start_time=start_ns
    ).end(end_time=end_ns)


def current_traceparent() -> str | None:
    """The current span's context as a W3C `traceparent` (version 00, 55 characters)."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex for log lines, when a span is current."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def context_from_traceparent(traceparent: str) -> Context | None:
    """The context a W3C `traceparent` names, or None for a malformed one."""
    context = _W3C.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def inject_headers(headers: MutableMapping[str, str]) -> None:
    """Writes the current context into outgoing HTTP headers (`traceparent`, `tracestate`,
    as OTEL_PROPAGATORS says)."""
    if _tracer is not None:
        propagate.inject(headers)


def _version() -> str:
    try:
        return metadata.version("conveyor-common")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"
