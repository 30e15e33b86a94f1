"""Issue 6's "one trace per job": every process of a real stack (gateway, job-service,
result-service, a Celery worker) exports its spans by OTLP/HTTP to a receiver in this test
process; a job's spans must form one trace from the gateway's request to job-service applying
the worker's outcome event, with the parent links in between, and the worker's log lines for
the job must carry that trace's id."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from conveyor_devstack.stack import Stack
from conveyor_testing.api import auth, wait_final

pytestmark = [pytest.mark.e2e]

CLIENT_TRACE_ID = uuid.uuid4().hex
CLIENT_SPAN_ID = uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                    )
                )
    return spans


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) trace endpoint: what a collector is to the services."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                spans = decode(body)
                with receiver._lock:
                    receiver._spans.extend(spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass  # the services export often; their requests are not the test's output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, done: Callable[[list[ReceivedSpan]], bool], *, timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """Polls until `done(spans)`; the services export in batches every 200 ms."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                summary = sorted({(s.service, s.name) for s in spans})
                raise AssertionError(f"spans never complete in {timeout}s; got {summary}")
            time.sleep(0.1)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def stack_options(receiver: OtlpReceiver) -> dict[str, Any]:
    return {
        "extra_env": {
            "CONVEYOR_TRACING_ENABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            # Spans leave each process within 200 ms instead of the default 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "CONVEYOR_LOG_JSON": "true",
        }
    }


@pytest.fixture(scope="module")
def key(module_stack: Stack) -> str:
    # One tenant for the module: the tests find their spans by job id.
    return module_stack.create_api_key(f"trace-{uuid.uuid4().hex[:8]}", "tracing")


@pytest.fixture
def client(module_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_stack.gateway_url, timeout=10.0) as c:
        yield c


def job_spans(spans: list[ReceivedSpan], job_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.attributes.get("conveyor.job.id") == job_id]


def one_trace(spans: list[ReceivedSpan], job_id: str) -> list[ReceivedSpan]:
    trace_ids = {s.trace_id for s in job_spans(spans, job_id)}
    assert len(trace_ids) == 1, f"job {job_id} is in {len(trace_ids)} traces"
    (trace_id,) = trace_ids
    return [s for s in spans if s.trace_id == trace_id]


def ancestry(trace: list[ReceivedSpan], span: ReceivedSpan) -> list[ReceivedSpan]:
    """`span` and its ancestors, nearest first; fails on a parent missing from the trace."""
    by_id = {s.span_id: s for s in trace}
    chain = [span]
    while chain[-1].parent_id is not None:
        parent = by_id.get(chain[-1].parent_id)
        assert parent is not None, f"{chain[-1].name}'s parent {chain[-1].parent_id} is missing"
        chain.append(parent)
    return chain


def only(trace: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    matches = [s for s in trace if s.service == service and s.name == name]
    assert len(matches) == 1, f"{len(matches)} spans {service}/{name}"
    return matches[0]


def test_one_job_is_one_trace_from_the_gateway_to_the_worker_and_back(
    module_stack: Stack, receiver: OtlpReceiver, client: httpx.Client, key: str
) -> None:
    submitted = client.post(
        "/v1/jobs", json={"task": "echo", "args": {"hello": "trace"}}, headers=auth(key)
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert wait_final(client, job_id, key)["status"] == "SUCCEEDED"

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {s.name for s in job_spans(spans, job_id)}
        return {"jobs.submit", "task.run echo", "events.apply succeeded"} <= names and any(
            s.service == "api-gateway" and s.name == "POST /v1/jobs"
            for s in spans
            if s.trace_id in {j.trace_id for j in job_spans(spans, job_id)}
        )

    trace = one_trace(receiver.wait_for(complete), job_id)
    assert {"api-gateway", "job-service", "worker"} <= {s.service for s in trace}

    gateway = only(trace, "api-gateway", "POST /v1/jobs")
    assert gateway.parent_id is None  # the client sent no context: the trace starts here
    assert gateway.attributes["http.route"] == "/v1/jobs"
    assert gateway.kind == ProtoSpan.SPAN_KIND_SERVER

    submit = only(trace, "job-service", "jobs.submit")
    assert submit.kind == ProtoSpan.SPAN_KIND_PRODUCER
    chain = ancestry(trace, submit)
    assert chain[-1] == gateway
    # gateway request → its call to job-service → job-service's request → the submit span
    services = [(s.service, s.kind) for s in chain]
    assert ("api-gateway", ProtoSpan.SPAN_KIND_CLIENT) in services
    assert ("job-service", ProtoSpan.SPAN_KIND_SERVER) in services
    server = next(
        s for s in chain if s.service == "job-service" and s.kind == ProtoSpan.SPAN_KIND_SERVER
    )
    assert server.name == "POST /internal/v1/jobs"
    caller = next(s for s in trace if s.span_id == server.parent_id)
    assert (caller.service, caller.name) == ("api-gateway", "POST job-service")

    run = only(trace, "worker", "task.run echo")
    assert run.parent_id == submit.span_id  # through the Celery message's envelope
    assert run.kind == ProtoSpan.SPAN_KIND_CONSUMER
    assert run.attributes["conveyor.attempt"] == 1
    assert run.attributes["conveyor.queue"] == "default"
    assert run.attributes["conveyor.outcome"] == "succeeded"

    applied = only(trace, "job-service", "events.apply succeeded")
    assert applied.parent_id == run.span_id  # through the lifecycle event
    assert applied.attributes["conveyor.job.status"] == "SUCCEEDED"

    # No span carries the job's arguments or the tenant's key.
    dumped = json.dumps([s.attributes for s in trace])
    assert "hello" not in dumped
    assert key not in dumped

    # The worker's log lines for the job carry the trace (and the task run's span).
    log = module_stack.output.log_path("worker-1")
    assert log is not None
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("job_id") == job_id]
    assert {line["event"] for line in mine} >= {"jobs.started", "jobs.succeeded"}
    assert all(line.get("trace_id") == gateway.trace_id for line in mine), mine
    assert all(line.get("span_id") == run.span_id for line in mine), mine


def test_a_retried_job_stays_in_the_callers_trace(
    receiver: OtlpReceiver, client: httpx.Client, key: str
) -> None:
    """The caller's W3C context is honoured, and the second attempt continues the same trace."""
    submitted = client.post(
        "/v1/jobs",
        json={
            "task": "fail",
            "args": {"message": "planned", "error_type": "PlannedError"},
            "max_attempts": 2,
            "retry_backoff_seconds": 0.1,
        },
        headers={**auth(key), "traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"},
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert wait_final(client, job_id, key)["status"] == "FAILED"

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = [s.name for s in job_spans(spans, job_id)]
        return names.count("task.run fail") == 2 and names.count("events.apply failed") == 2

    trace = one_trace(receiver.wait_for(complete), job_id)
    assert trace[0].trace_id == CLIENT_TRACE_ID
    gateway = only(trace, "api-gateway", "POST /v1/jobs")
    assert gateway.parent_id == CLIENT_SPAN_ID

    submit = only(trace, "job-service", "jobs.submit")
    runs = sorted(
        (s for s in trace if s.name == "task.run fail"),
        key=lambda s: s.attributes["conveyor.attempt"],
    )
    assert [r.attributes["conveyor.attempt"] for r in runs] == [1, 2]
    assert all(r.parent_id == submit.span_id for r in runs)
    assert all(r.attributes["conveyor.outcome"] == "failed" for r in runs)
    assert all(r.attributes["error.type"] == "PlannedError" for r in runs)

    applied = {
        s.parent_id: s.attributes["conveyor.job.status"]
        for s in trace
        if s.name == "events.apply failed"
    }
    assert applied == {runs[0].span_id: "RETRYING", runs[1].span_id: "FAILED"}
