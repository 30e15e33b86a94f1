"""Submitting, reading and listing jobs through the gateway: validation at the edge, forwarding,
problem relaying and request ids."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def writer(keys: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.full}"}


async def test_submit_forwards_the_validated_job(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    response = await gateway.post(
        "/v1/jobs",
        json={"task": "echo", "args": {"n": 1}, "priority": 3},
        headers={**writer, "Idempotency-Key": "order-42"},
    )

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["task"] == "echo"
    assert job["idempotency_key"] == "order-42"
    (call,) = double.calls_to("/internal/v1/jobs")
    assert call.method == "POST"
    assert call.headers["content-type"] == "application/json"
    assert call.headers["idempotency-key"] == "order-42"
    # Only what the client set travels on; job-service applies the task's defaults.
    assert json.loads(call.body) == {"task": "echo", "args": {"n": 1}, "priority": 3}


async def test_submit_batch(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    response = await gateway.post(
        "/v1/jobs/batch", json={"jobs": [{"task": "echo"}, {"task": "echo", "args": {"a": 1}}]},
        headers=writer,
    )  # fmt: skip

    assert response.status_code == 202
    assert [j["task"] for j in response.json()["jobs"]] == ["echo", "echo"]
    (call,) = double.calls_to("/internal/v1/jobs/batch")
    assert json.loads(call.body) == {"jobs": [{"task": "echo"}, {"task": "echo", "args": {"a": 1}}]}


async def test_get_job(gateway: httpx.AsyncClient, writer: dict[str, str], double: Any) -> None:
    job_id = double.add_job("acme", status="RUNNING")

    response = await gateway.get(f"/v1/jobs/{job_id}", headers=writer)

    assert response.status_code == 200
    assert response.json()["id"] == job_id
    assert response.json()["status"] == "RUNNING"


async def test_another_tenants_job_is_not_found(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    job_id = double.add_job("acme")

    response = await gateway.get(
        f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {keys.other_tenant}"}
    )

    assert response.status_code == 404
    assert response.json()["type"] == "urn:conveyor:problem:job-not-found"


async def test_upstream_problem_is_relayed_with_this_requests_id(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    job_id = str(uuid.uuid4())

    response = await gateway.get(
        f"/v1/jobs/{job_id}", headers={**writer, "X-Request-ID": "req-relay-1"}
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:conveyor:problem:job-not-found",
        "title": "job not found",
        "status": 404,
        "detail": "No such job.",
        "extra": {"job_id": job_id},
        "request_id": "req-relay-1",
    }


async def test_upstream_validation_problem_is_relayed(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await gateway.post("/v1/jobs", json={"task": "unknown-task"}, headers=writer)

    assert response.status_code == 422
    assert response.json()["type"] == "urn:conveyor:problem:unknown-task"
    assert response.json()["extra"] == {"known_tasks": ["echo"]}


async def test_list_forwards_filters(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    mine = double.add_job("acme")
    double.add_job("globex")

    response = await gateway.get(
        "/v1/jobs",
        params={
            "status": "QUEUED",
            "task": "echo",
            "queue": "default",
            "created_after": "2025-01-01T00:00:00+00:00",
            "limit": "10",
            "cursor": "abc",
        },
        headers=writer,
    )

    assert response.status_code == 200
    assert [j["id"] for j in response.json()["items"]] == [mine]
    assert response.json()["next_cursor"] == "next-page"
    (call,) = double.calls_to("/internal/v1/jobs")
    assert call.params == {
        "status": "QUEUED",
        "task": "echo",
        "queue": "default",
        "created_after": "2025-01-01T00:00:00+00:00",
        "limit": "10",
        "cursor": "abc",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "query.limit"),
        ({"limit": "100000"}, "query.limit"),
        ({"status": "DONE"}, "query.status"),
        ({"created_after": "2025-01-01T00:00:00"}, "query.created_after"),
        ({"task": "bad name!"}, "query.task"),
    ],
)
async def test_list_rejects_bad_filters(
    gateway: httpx.AsyncClient,
    writer: dict[str, str],
    double: Any,
    params: dict[str, str],
    field: str,
) -> None:
    response = await gateway.get("/v1/jobs", params=params, headers=writer)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert double.calls_to("/internal/v1/jobs") == []


async def test_tasks(gateway: httpx.AsyncClient, writer: dict[str, str]) -> None:
    response = await gateway.get("/v1/tasks", headers=writer)

    assert response.status_code == 200
    assert response.json()["tasks"][0]["name"] == "echo"


async def test_job_id_must_be_a_uuid(gateway: httpx.AsyncClient, writer: dict[str, str]) -> None:
    response = await gateway.get("/v1/jobs/not-a-uuid", headers=writer)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "path.job_id"


async def test_request_id_is_passed_to_every_upstream_call(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    response = await gateway.post(
        "/v1/jobs", json={"task": "echo"}, headers={**writer, "X-Request-ID": "req-abc-123"}
    )

    assert response.headers["x-request-id"] == "req-abc-123"
    assert [c.headers.get("x-request-id") for c in double.calls] == ["req-abc-123"] * 2


async def test_request_id_is_made_when_absent(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    response = await gateway.get("/v1/tasks", headers=writer)

    made = response.headers["x-request-id"]
    assert made
    assert [c.headers.get("x-request-id") for c in double.calls] == [made, made]


async def test_trace_context_is_passed_on(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await gateway.get("/v1/tasks", headers={**writer, "traceparent": traceparent})

    assert double.calls_to("/internal/v1/tasks")[0].headers["traceparent"] == traceparent


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "echo", "priority": "s3cr3t-value"}, "body.priority"),
        ({"task": "echo", "tenant_id": "s3cr3t-value"}, "body.tenant_id"),
        ({"task": "echo", "args": "s3cr3t-value"}, "body.args"),
        ({"task": "echo", "run_at": "2030-01-01T00:00:00"}, "body.run_at"),
        ({"args": {}}, "body.task"),
    ],
)
async def test_invalid_job_names_the_field_and_echoes_nothing(
    gateway: httpx.AsyncClient,
    writer: dict[str, str],
    double: Any,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await gateway.post("/v1/jobs", json=body, headers=writer)

    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:conveyor:problem:validation-error"
    assert field in [e["field"] for e in problem["errors"]]
    assert "s3cr3t-value" not in response.text
    assert double.submitted_jobs() == []


async def test_invalid_job_in_a_batch_names_its_index(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await gateway.post(
        "/v1/jobs/batch", json={"jobs": [{"task": "echo"}, {"task": ""}]}, headers=writer
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body.jobs.1.task"]


@pytest.mark.parametrize("key", ["k" * 201, "has space"])
async def test_bad_idempotency_key_is_refused(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any, key: str
) -> None:
    response = await gateway.post(
        "/v1/jobs", json={"task": "echo"}, headers={**writer, "Idempotency-Key": key}
    )

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["header.Idempotency-Key"]
    assert double.submitted_jobs() == []


async def test_malformed_json_is_a_bad_request(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await gateway.post(
        "/v1/jobs",
        content=b'{"task": "echo", "args": {',
        headers={**writer, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["type"] == "urn:conveyor:problem:malformed-body"


async def test_unknown_route_is_a_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_health_routes_need_no_key(gateway: httpx.AsyncClient, double: Any) -> None:
    assert (await gateway.get("/healthz")).status_code == 200
    ready = await gateway.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"job-service": "ok", "result-service": "ok"}
    metrics = await gateway.get("/metrics")
    assert metrics.status_code == 200
    assert "conveyor_http_requests_total" in metrics.text


async def test_not_ready_when_an_upstream_is_unhealthy(
    gateway: httpx.AsyncClient, double: Any
) -> None:
    double.healthz_status = 503

    ready = await gateway.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["status"] == "not-ready"
