"""`http.request` against a local server: allowed by name it works; everything the SSRF guard
exists for is refused, on the first hop and on every redirect hop."""

from __future__ import annotations

import json

import pytest

from conveyor_common.events import EventType

pytestmark = pytest.mark.integration

MAX_BYTES = 1_000


@pytest.fixture(scope="module")
def workers(module_worker_factory, http_server):
    # The threads pool here, solo below, prefork in test_worker: every pool runs real jobs.
    allowed = module_worker_factory(
        pool="threads",
        concurrency=2,
        wait=False,
        env={
            "CONVEYOR_HTTP_ALLOWED_HOSTS": f"example.invalid, 127.0.0.1:{http_server.port}",
            "CONVEYOR_HTTP_MAX_RESPONSE_BYTES": str(MAX_BYTES),
        },
    )
    # No allowed hosts; the solo pool; its own queue, so the two workers never share a job.
    plain = module_worker_factory(pool="solo", wait=False, env={"CONVEYOR_WORKER_QUEUES": "plain"})
    allowed.wait_ready()
    plain.wait_ready()
    return allowed, plain


@pytest.fixture
def worker(workers):
    return workers[0]


@pytest.fixture
def plain_worker(workers):
    return workers[1]


def run(worker, args, queue="default"):
    job_id = worker.submit("http.request", args, queue=queue)
    event = worker.final_event(job_id)
    if event.type == EventType.SUCCEEDED:
        return event, worker.result(job_id)["result"]["value"]
    return event, None


def test_allowed_host_succeeds(worker, http_server):
    event, value = run(worker, {"url": http_server.url("/ok")})
    assert event.type == EventType.SUCCEEDED
    assert value["status"] == 200
    assert value["body"] == "hello"
    assert value["truncated"] is False
    assert value["headers"]["content-type"] == "text/plain; charset=utf-8"


def test_method_headers_and_body_are_sent(worker, http_server):
    event, value = run(
        worker,
        {
            "method": "POST",
            "url": http_server.url("/echo"),
            "headers": {"X-Team": "blue"},
            "body": "payload",
        },
    )
    assert event.type == EventType.SUCCEEDED
    assert value["status"] == 201
    assert json.loads(value["body"]) == {"method": "POST", "body": "payload", "x-team": "blue"}


def test_response_body_is_capped(worker, http_server):
    _event, value = run(worker, {"url": http_server.url("/big")})
    assert value["truncated"] is True
    assert value["body"] == "x" * MAX_BYTES


def test_redirect_within_allowed_host_is_followed(worker, http_server):
    _event, value = run(worker, {"url": http_server.url("/redirect-ok")})
    assert value["status"] == 200
    assert value["url"] == http_server.url("/ok")
    assert value["body"] == "hello"


def test_same_url_without_allowance_is_refused(plain_worker, http_server):
    hits_before = len(http_server.hits)
    event, _ = run(plain_worker, {"url": http_server.url("/ok")}, queue="plain")
    assert event.type == EventType.FAILED
    assert event.error_type == "DestinationNotAllowed"
    assert event.retryable is False
    assert "loopback" in (event.error_message or "")
    assert len(http_server.hits) == hits_before  # refused before connecting


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://localhost:9/", "loopback"),
    ],
)
def test_forbidden_destinations_are_refused(worker, url, reason):
    event, _ = run(worker, {"url": url})
    assert (event.type, event.error_type) == (EventType.FAILED, "DestinationNotAllowed")
    assert event.retryable is False
    assert reason in (event.error_message or "")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/redirect-loopback", "loopback"),
        ("/redirect-metadata", "metadata"),
        ("/redirect-file", "scheme"),
    ],
)
def test_redirect_to_forbidden_destination_is_refused(worker, http_server, path, reason):
    event, _ = run(worker, {"url": http_server.url(path)})
    assert (event.type, event.error_type) == (EventType.FAILED, "DestinationNotAllowed")
    assert reason in (event.error_message or "")
    assert http_server.hits[-1] == path  # the first hop was made; the next never was
