"""What the client sees when an upstream is down, slow, or answers outside its contract: a
problem with the right status, never a hang or a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PROBLEM = "urn:conveyor:problem:"


@pytest.fixture
def writer(keys: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.full}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_job_service_down_is_service_unavailable(
    open_gateway: Any, writer: dict[str, str], unused_port: int
) -> None:
    async with open_gateway(job_service_url=f"http://127.0.0.1:{unused_port}") as gateway:
        response = await gateway.post("/v1/jobs", json={"task": "echo"}, headers=writer)

    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"] == "1"


async def test_slow_upstream_is_a_gateway_timeout(
    open_gateway: Any, writer: dict[str, str], double: Any
) -> None:
    double.delay_seconds = 2.0  # the handler sleeps past the gateway's read timeout
    async with open_gateway(upstream_read_timeout=0.5) as gateway:
        response = await gateway.get("/v1/tasks", headers=writer)

    assert_problem(response, 504, "gateway-timeout")


async def test_non_problem_5xx_is_a_bad_gateway(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await gateway.post("/v1/jobs", json={"task": "crash"}, headers=writer)

    body = assert_problem(response, 502, "bad-gateway")
    assert "Internal Server Error" not in response.text
    assert body["status"] == 502


async def test_problem_5xx_is_relayed(gateway: httpx.AsyncClient, writer: dict[str, str]) -> None:
    response = await gateway.post("/v1/jobs", json={"task": "problem-500"}, headers=writer)

    body = assert_problem(response, 500, "internal-error")
    assert body["detail"] == "job-service broke"


async def test_answer_outside_the_contract_is_a_bad_gateway(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await gateway.post("/v1/jobs", json={"task": "garbage"}, headers=writer)

    assert_problem(response, 502, "bad-gateway")


async def test_batch_answer_outside_the_contract_is_a_bad_gateway(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    # The gateway checks only each job's id and status of a batch answer (BatchAccepted):
    # a job id that is not a UUID still fails the check.
    response = await gateway.post(
        "/v1/jobs/batch", json={"jobs": [{"task": "echo"}, {"task": "garbage"}]}, headers=writer
    )

    assert_problem(response, 502, "bad-gateway")


async def test_refused_internal_token_is_a_bad_gateway_not_a_401(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    double.refuse_token_on_data_routes = True

    response = await gateway.get("/v1/tasks", headers=writer)

    assert_problem(response, 502, "bad-gateway")
    assert "www-authenticate" not in response.headers
