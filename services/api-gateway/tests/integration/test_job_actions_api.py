"""A job's history, cancel and retry through the gateway, and the `tag` filter: scopes, relaying
of job-service's answers and problems, tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PROBLEM = "urn:conveyor:problem:"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def manager(keys: Any) -> dict[str, str]:
    return bearer(keys.manage)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_events_relay_the_history(gateway: httpx.AsyncClient, keys: Any, double: Any) -> None:
    job_id = double.add_dead_letter("acme")

    response = await gateway.get(f"/v1/jobs/{job_id}/events", headers=bearer(keys.read))

    assert response.status_code == 200
    assert response.json() == {"items": double.events[job_id]}
    assert [e["attempt"] for e in response.json()["items"]] == [1, 2, 3]
    (call,) = double.calls_to(f"/internal/v1/jobs/{job_id}/events")
    assert call.method == "GET"
    assert call.headers["x-conveyor-tenant"] == "acme"


async def test_events_of_another_tenants_job_are_not_found(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    job_id = double.add_job("acme", status="RUNNING")

    response = await gateway.get(f"/v1/jobs/{job_id}/events", headers=bearer(keys.other_tenant))

    assert_problem(response, 404, "job-not-found")


async def test_cancel_a_queued_job_and_again(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="QUEUED")

    first = await gateway.post(f"/v1/jobs/{job_id}/cancel", headers=manager)
    again = await gateway.post(f"/v1/jobs/{job_id}/cancel", headers=manager)

    assert first.status_code == 200
    assert first.json()["id"] == job_id
    assert first.json()["status"] == "CANCELLED"
    assert again.status_code == 200
    assert again.json() == first.json()
    calls = double.calls_to(f"/internal/v1/jobs/{job_id}/cancel")
    assert [c.method for c in calls] == ["POST", "POST"]
    assert [c.body for c in calls] == [b"", b""]


async def test_cancel_a_finished_job_is_a_conflict(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="SUCCEEDED")

    response = await gateway.post(
        f"/v1/jobs/{job_id}/cancel", headers={**manager, "X-Request-ID": "req-cancel-1"}
    )

    body = assert_problem(response, 409, "job-already-finished")
    assert body["extra"] == {"status": "SUCCEEDED"}
    assert body["request_id"] == "req-cancel-1"
    assert double.jobs[job_id]["status"] == "SUCCEEDED"


async def test_cancel_another_tenants_job_is_not_found(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("globex", status="QUEUED")

    response = await gateway.post(f"/v1/jobs/{job_id}/cancel", headers=manager)

    assert_problem(response, 404, "job-not-found")
    assert double.jobs[job_id]["status"] == "QUEUED"


async def test_cancel_an_unknown_job_is_not_found(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    response = await gateway.post(f"/v1/jobs/{uuid.uuid4()}/cancel", headers=manager)

    assert_problem(response, 404, "job-not-found")


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
async def test_retry_starts_a_new_cycle(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any, status: str
) -> None:
    job_id = double.add_job("acme", status=status)

    response = await gateway.post(f"/v1/jobs/{job_id}/retry", headers=manager)

    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    assert response.json()["status"] == "PENDING"
    assert response.json()["cycle"] == 2


async def test_retry_a_running_job_is_a_conflict(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="RUNNING")

    response = await gateway.post(f"/v1/jobs/{job_id}/retry", headers=manager)

    body = assert_problem(response, 409, "job-not-retryable")
    assert body["extra"] == {"status": "RUNNING"}


async def test_retry_another_tenants_job_is_not_found(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("globex", status="FAILED")

    response = await gateway.post(f"/v1/jobs/{job_id}/retry", headers=manager)

    assert_problem(response, 404, "job-not-found")
    assert double.jobs[job_id]["status"] == "FAILED"


@pytest.mark.parametrize(
    ("method", "action", "key_name", "needed"),
    [
        ("POST", "cancel", "full", "jobs:manage"),
        ("POST", "retry", "full", "jobs:manage"),
        ("POST", "cancel", "read", "jobs:manage"),
        ("GET", "events", "write", "jobs:read"),
        ("GET", "events", "admin", "jobs:read"),
    ],
)
async def test_missing_scope_is_forbidden(
    gateway: httpx.AsyncClient,
    keys: Any,
    double: Any,
    method: str,
    action: str,
    key_name: str,
    needed: str,
) -> None:
    job_id = double.add_job("acme", status="FAILED")

    response = await gateway.request(
        method, f"/v1/jobs/{job_id}/{action}", headers=bearer(getattr(keys, key_name))
    )

    body = assert_problem(response, 403, "forbidden")
    assert body["extra"] == {"required_scope": needed}
    assert {c.path for c in double.calls} == {"/internal/v1/auth/verify"}
    assert double.jobs[job_id]["status"] == "FAILED"


async def test_routes_need_a_key(gateway: httpx.AsyncClient, double: Any) -> None:
    for method, action in [("GET", "events"), ("POST", "cancel"), ("POST", "retry")]:
        response = await gateway.request(method, f"/v1/jobs/{uuid.uuid4()}/{action}")

        assert_problem(response, 401, "unauthorized")
    assert double.calls == []


async def test_job_id_must_be_a_uuid(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    response = await gateway.post("/v1/jobs/not-a-uuid/cancel", headers=manager)

    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["path.job_id"]
    assert {c.path for c in double.calls} == {"/internal/v1/auth/verify"}


async def test_list_forwards_the_tag_filter(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    response = await gateway.get(
        "/v1/jobs", params={"tag": "nightly-import", "limit": "5"}, headers=bearer(keys.read)
    )

    assert response.status_code == 200
    (call,) = double.calls_to("/internal/v1/jobs")
    assert call.params == {"tag": "nightly-import", "limit": "5"}


@pytest.mark.parametrize("tag", ["", "t" * 65])
async def test_list_refuses_a_bad_tag(
    gateway: httpx.AsyncClient, keys: Any, double: Any, tag: str
) -> None:
    response = await gateway.get("/v1/jobs", params={"tag": tag}, headers=bearer(keys.read))

    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["query.tag"]
    assert double.calls_to("/internal/v1/jobs") == []
