"""One real prefork worker (two children) with a team's task module, fed pre-built messages."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from conveyor_common.catalog import TaskDescriptor
from conveyor_common.envelope import TaskEnvelope
from conveyor_common.events import EventType
from conveyor_common.limits import MAX_ERROR_MESSAGE_LENGTH
from conveyor_common.messages import build_task_message, queue_key
from conveyor_common.results import StoredResult

pytestmark = pytest.mark.integration

LEASE_TTL = 3


@pytest.fixture(scope="module")
def worker(module_worker_factory):
    return module_worker_factory(
        env={"CONVEYOR_TASK_MODULES": "team_tasks", "CONVEYOR_LEASE_TTL_SECONDS": str(LEASE_TTL)},
        pool="prefork",
        concurrency=2,
    )


def test_catalog_holds_builtins_with_schemas(worker):
    catalog = {
        name.decode(): TaskDescriptor.model_validate_json(raw)
        for name, raw in worker.client.hgetall(worker.keys.catalog).items()
    }
    assert {"echo", "sleep", "fail", "http.request"} <= catalog.keys()
    sleep = catalog["sleep"]
    assert sleep.input_schema["properties"]["seconds"]["type"] == "number"
    assert sleep.input_schema["required"] == ["seconds"]
    assert sleep.description.startswith("Sleeps")
    http = catalog["http.request"]
    assert {"method", "url", "headers", "body", "timeout_seconds"} <= set(
        http.input_schema["properties"]
    )
    assert catalog["fail"].input_schema["properties"]["permanent"]["default"] is False


def test_worker_key_lives_with_a_ttl(worker):
    keys = list(worker.client.scan_iter(match=worker.keys.worker("*")))
    assert len(keys) == 1
    info = json.loads(worker.client.get(keys[0]))
    assert info["pid"] == worker.process.pid
    assert set(info["queues"]) == {"default", "team"}
    assert info["concurrency"] == 2
    assert {"echo", "team.greet"} <= set(info["tasks"])
    assert 0 < worker.client.ttl(keys[0]) <= 30
    # Its connections say whose they are in CLIENT LIST.
    names = {c["name"] for c in worker.client.client_list()}
    assert f"conveyor-worker:{info['name']}:{info['pid']}" in names


def test_echo_reports_lifecycle_and_stores_result(worker):
    job_id = worker.submit("echo", {"greeting": "hi", "n": [1, 2]}, attempt=2, tenant="t-echo")
    events = worker.wait_events(job_id)
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.STARTED, EventType.SUCCEEDED]
    assert all(e.attempt == 2 and e.tenant_id == "t-echo" and e.task == "echo" for e in events)
    assert all(e.worker and e.worker.startswith("conveyor@") for e in events)
    assert (events[-1].duration_ms or -1) >= 0

    # The result is stored before the final event is sent: whoever sees one finds the other.
    assert worker.client.exists(worker.keys.result(str(job_id)))
    record = worker.result(job_id)
    assert record["status"] == "SUCCESS"
    stored = StoredResult.model_validate(record["result"])
    assert stored == StoredResult(
        tenant_id="t-echo", attempt=2, value={"greeting": "hi", "n": [1, 2]}
    )


def test_fail_reports_type_and_message_and_failure_record(worker):
    job_id = worker.submit("fail", {"error_type": "ValueError", "message": "boom"})
    failed = worker.final_event(job_id)
    assert failed.type == EventType.FAILED
    assert failed.error_type == "ValueError"
    assert failed.error_message == "boom"
    assert failed.retryable is True
    assert "ValueError: boom" in (failed.traceback or "")

    assert worker.client.exists(worker.keys.result(str(job_id)))  # stored before the event
    record = worker.result(job_id)
    assert record["status"] == "FAILURE"
    assert record["result"]["exc_type"] == "TaskFailure"
    assert record["result"]["exc_message"] == ["acme", "ValueError", "boom"]


def test_permanent_failure_is_not_retryable(worker):
    job_id = worker.submit("fail", {"error_type": "Gone", "message": "x", "permanent": True})
    failed = worker.final_event(job_id)
    assert (failed.error_type, failed.retryable) == ("Gone", False)


def test_long_error_message_is_truncated(worker):
    job_id = worker.submit("fail", {"message": "m" * MAX_ERROR_MESSAGE_LENGTH})
    failed = worker.final_event(job_id)
    assert failed.error_message is not None
    assert len(failed.error_message) == MAX_ERROR_MESSAGE_LENGTH  # within the limit, all of it
    job_id = worker.submit("team.refuse", queue="team")
    assert worker.final_event(job_id).retryable is False


def test_bad_arguments_fail_without_retry(worker):
    job_id = worker.submit("sleep", {"seconds": "soon", "extra": 1})
    events = worker.wait_events(job_id)
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.FAILED]
    failed = events[-1]
    assert failed.error_type == "InvalidArguments"
    assert failed.retryable is False
    message = failed.error_message or ""
    assert "seconds" in message
    assert "extra" in message
    assert "soon" not in message  # values are never echoed
    assert worker.result(job_id)["result"]["exc_message"][1] == "InvalidArguments"


def test_unknown_task_is_reported_not_dropped(worker):
    job_id = worker.submit("no.such.task", {"secret": "hunter2"}, tenant="t-unknown")
    failed = worker.final_event(job_id)
    assert failed.error_type == "UnknownTask"
    assert failed.tenant_id == "t-unknown"
    record = worker.result(job_id)
    assert record["result"]["exc_type"] == "TaskFailure"
    assert record["result"]["exc_message"][:2] == ["t-unknown", "UnknownTask"]
    assert "hunter2" not in worker.process.read_log()  # Celery's body dump is cut


def test_soft_time_limit_becomes_time_limit_exceeded(worker):
    job_id = worker.submit("sleep", {"seconds": 20}, soft_time_limit=1, time_limit=30)
    failed = worker.final_event(job_id)
    assert failed.type == EventType.FAILED
    assert failed.error_type == "TimeLimitExceeded"
    assert failed.retryable is True
    assert worker.result(job_id)["result"]["exc_message"][1] == "TimeLimitExceeded"
    # Released in the same round trip as the final event: gone already, not expiring.
    assert not worker.client.exists(worker.keys.lease(str(job_id)))


def test_hard_time_limit_is_reported_by_the_main_process(worker, eventually):
    job_id = worker.submit("sleep", {"seconds": 20}, soft_time_limit=None, time_limit=1)
    events = worker.wait_events(job_id)
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.STARTED, EventType.FAILED]
    assert events[-1].error_type == "TimeLimitExceeded"
    record = worker.result(job_id)
    assert record["result"]["exc_type"] == "TaskFailure"
    assert record["result"]["exc_message"][:2] == ["acme", "TimeLimitExceeded"]
    # Nobody renews the killed child's lease: it expires.
    lease = worker.keys.lease(str(job_id))
    eventually(lambda: not worker.client.exists(lease), LEASE_TTL + 5, "lease expired")
    assert worker.client.get(worker.keys.fence(str(job_id))) == b"1"
    # The pool replaced the killed child and goes on working.
    assert worker.final_event(worker.submit("echo", {"after": "kill"})).type == EventType.SUCCEEDED


def test_task_module_is_advertised_and_runs(worker):
    raw = worker.client.hget(worker.keys.catalog, "team.greet")
    descriptor = TaskDescriptor.model_validate_json(raw)
    assert descriptor.defaults.queue == "team"
    assert descriptor.defaults.max_attempts == 5
    assert descriptor.description.startswith("Greets someone")
    assert descriptor.input_schema["required"] == ["name"]

    job_id = worker.submit(
        "team.greet", {"name": "Ada"}, queue="team", attempt=3, idempotency_key="k-1"
    )
    assert worker.final_event(job_id).type == EventType.SUCCEEDED
    assert worker.result(job_id)["result"]["value"] == {
        "greeting": "hello Ada",
        "job_id": str(job_id),
        "tenant_id": "acme",
        "attempt": 3,
        "idempotency_key": "k-1",
    }


def test_async_task_runs(worker):
    job_id = worker.submit("team.add_async", {"a": 2, "b": 40})
    assert worker.final_event(job_id).type == EventType.SUCCEEDED
    assert worker.result(job_id)["result"]["value"] == 42


def test_result_that_is_not_json_fails(worker):
    job_id = worker.submit("team.not_json")
    failed = worker.final_event(job_id)
    assert (failed.error_type, failed.retryable) == ("ResultNotSerializable", False)


def test_health_ready_and_metrics_answer(worker):
    assert httpx.get(f"{worker.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{worker.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "consumer": "ok"}

    job_id = worker.submit("echo", {"for": "metrics"})
    assert worker.final_event(job_id).type == EventType.SUCCEEDED
    metrics = httpx.get(f"{worker.url}/metrics").text
    # Counted in a prefork child, served by the main process: multiprocess mode works.
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("conveyor_worker_tasks_total{")
        and 'task="echo"' in line
        and 'outcome="succeeded"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    # Job counts by status are job-service's (once per job, from PostgreSQL): a worker exporting
    # the same names would make every sum across services count jobs twice.
    assert "conveyor_jobs_finished_total" not in metrics
    assert "conveyor_jobs_started_total" not in metrics
    assert "conveyor_job_run_duration_seconds_bucket" in metrics
    assert httpx.get(f"{worker.url}/nope").status_code == 404


def test_invalid_envelope_fails_without_running(worker):
    # A `job` kwarg missing a required field: nothing runs, and the attempt is still reported.
    job_id = uuid.uuid4()
    envelope = TaskEnvelope(
        job_id=job_id, tenant_id="acme", task="echo", attempt=1, timeout_seconds=5
    )
    message = json.loads(build_task_message(envelope, soft_time_limit=None, time_limit=5))
    body = json.loads(base64.b64decode(message["body"]))
    del body[1]["job"]["timeout_seconds"]
    message["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    worker.client.lpush(worker.keys.queue(queue_key("default")), json.dumps(message))

    events = worker.wait_events(job_id)
    assert [e.type for e in events] == [EventType.RECEIVED, EventType.FAILED]
    assert (events[-1].error_type, events[-1].retryable) == ("InvalidEnvelope", False)
    assert "timeout_seconds" in (events[-1].error_message or "")
