"""`GET /v1/jobs/{id}/result`: job-service first, result-service only for a succeeded job."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PROBLEM = "urn:conveyor:problem:"


@pytest.fixture
def reader(keys: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.read}"}


def result_calls(double: Any) -> list[Any]:
    return [c for c in double.calls if c.path.startswith("/internal/v1/results/")]


async def test_succeeded_job_returns_its_result(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="SUCCEEDED")
    double.results[job_id] = (200, {"job_id": job_id, "result": {"total": 42}}, {})

    response = await gateway.get(f"/v1/jobs/{job_id}/result", headers=reader)

    assert response.status_code == 200
    assert response.json() == {"job_id": job_id, "result": {"total": 42}}
    (call,) = result_calls(double)
    assert call.headers["x-conveyor-tenant"] == "acme"


async def test_unknown_job_is_not_found_without_asking_for_a_result(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    response = await gateway.get(f"/v1/jobs/{uuid.uuid4()}/result", headers=reader)

    assert response.status_code == 404
    assert response.json()["type"] == PROBLEM + "job-not-found"
    assert result_calls(double) == []


@pytest.mark.parametrize("status", ["PENDING", "QUEUED", "RUNNING", "RETRYING", "SCHEDULED"])
async def test_unfinished_job(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any, status: str
) -> None:
    job_id = double.add_job("acme", status=status)

    response = await gateway.get(f"/v1/jobs/{job_id}/result", headers=reader)

    assert response.status_code == 409
    assert response.json()["type"] == PROBLEM + "job-not-finished"
    assert response.json()["extra"] == {"status": status}
    assert result_calls(double) == []


async def test_failed_job_carries_its_error(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    error = {"type": "ValueError", "message": "bad row 7"}
    job_id = double.add_job("acme", status="FAILED", error=error)

    response = await gateway.get(f"/v1/jobs/{job_id}/result", headers=reader)

    assert response.status_code == 409
    assert response.json()["type"] == PROBLEM + "job-failed"
    assert response.json()["extra"] == {"error": error}
    assert result_calls(double) == []


async def test_cancelled_job(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="CANCELLED")

    response = await gateway.get(f"/v1/jobs/{job_id}/result", headers=reader)

    assert response.status_code == 409
    assert response.json()["type"] == PROBLEM + "job-cancelled"


async def test_succeeded_job_without_a_stored_result_has_expired(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="SUCCEEDED")

    response = await gateway.get(
        f"/v1/jobs/{job_id}/result", headers={**reader, "X-Request-ID": "req-expired"}
    )

    assert response.status_code == 410
    problem = response.json()
    assert problem["type"] == PROBLEM + "result-expired"
    assert problem["request_id"] == "req-expired"
    assert problem["instance"] == f"/v1/jobs/{job_id}/result"


async def test_result_service_problem_is_relayed_with_retry_after(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    job_id = double.add_job("acme", status="SUCCEEDED")
    unavailable = {
        "type": PROBLEM + "service-unavailable",
        "title": "A dependency is unavailable; try again shortly",
        "status": 503,
        "detail": "The result backend is unreachable.",
        "instance": f"/internal/v1/results/{job_id}",
    }
    double.results[job_id] = (503, unavailable, {"Retry-After": "3"})

    response = await gateway.get(f"/v1/jobs/{job_id}/result", headers=reader)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    body = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"]
    # The internal path is replaced by the one the client called; the rest is unchanged.
    assert body == {**unavailable, "instance": f"/v1/jobs/{job_id}/result"}


async def test_result_service_down(
    open_gateway: Any, reader: dict[str, str], double: Any, unused_port: int
) -> None:
    job_id = double.add_job("acme", status="SUCCEEDED")
    async with open_gateway(result_service_url=f"http://127.0.0.1:{unused_port}") as gateway:
        response = await gateway.get(f"/v1/jobs/{job_id}/result", headers=reader)

    assert response.status_code == 503
    assert response.json()["type"] == PROBLEM + "service-unavailable"
    assert response.headers["retry-after"] == "1"
