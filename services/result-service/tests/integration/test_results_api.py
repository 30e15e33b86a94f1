"""The result route against a real Redis holding records written by Celery's own backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from conveyor_common.celery_app import create_celery_app
from conveyor_common.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.results import StoredResult, TaskFailure
from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from conveyor_testing.plugin import Backend
from conveyor_testing.ports import free_port
from result_service.config import Settings

pytestmark = pytest.mark.integration

TENANT = "acme"


@pytest.fixture
def celery_app(redis_backend: Backend, redis_namespace: str) -> Iterator[Celery]:
    """Writes records exactly as the workers' Celery result backend does."""
    app = create_celery_app("result-service-tests", broker_url=redis_backend.url,
                            namespace=redis_namespace)  # fmt: skip
    yield app
    app.close()


@pytest.fixture
async def client(
    redis_backend: Backend,
    redis_namespace: str,
    make_settings: Callable[..., Settings],
    open_client: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(redis_url=redis_backend.url, redis_namespace=redis_namespace)
    async with open_client(settings) as client:
        yield client


def store_success(app: Celery, job_id: str, tenant: str, value: Any) -> None:
    stored = StoredResult(tenant_id=tenant, attempt=1, value=value)
    app.backend.store_result(job_id, stored.model_dump(mode="json"), "SUCCESS")


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_TYPE_PREFIX + slug
    assert body["status"] == status
    return body


async def test_succeeded_job_of_own_tenant(client: httpx.AsyncClient, celery_app: Celery) -> None:
    job_id = str(uuid.uuid4())
    store_success(celery_app, job_id, TENANT, {"rows": [1, 2, 3], "ok": True})

    response = await client.get(f"/internal/v1/results/{job_id}")

    assert response.status_code == 200
    assert response.json() == {"job_id": job_id, "result": {"rows": [1, 2, 3], "ok": True}}


async def test_another_tenants_result_looks_exactly_like_none(
    client: httpx.AsyncClient, celery_app: Celery
) -> None:
    theirs, missing = str(uuid.uuid4()), str(uuid.uuid4())
    store_success(celery_app, theirs, "globex", "secret value")

    other = await client.get(f"/internal/v1/results/{theirs}")
    absent = await client.get(f"/internal/v1/results/{missing}")

    other_body = assert_problem(other, 404, "result-not-found")
    absent_body = assert_problem(absent, 404, "result-not-found")
    assert "secret value" not in other.text
    ignore = {"instance", "request_id"}
    assert {k: v for k, v in other_body.items() if k not in ignore} == {
        k: v for k, v in absent_body.items() if k not in ignore
    }


async def test_failed_job_carries_the_error(client: httpx.AsyncClient, celery_app: Celery) -> None:
    job_id = str(uuid.uuid4())
    celery_app.backend.mark_as_failure(job_id, TaskFailure(TENANT, "ValueError", "bad input"))

    response = await client.get(f"/internal/v1/results/{job_id}")

    body = assert_problem(response, 409, "job-failed")
    assert body["extra"] == {"error": {"type": "ValueError", "message": "bad input"}}


async def test_failure_stored_with_store_result_reads_the_same(
    client: httpx.AsyncClient, celery_app: Celery
) -> None:
    job_id = str(uuid.uuid4())
    celery_app.backend.store_result(job_id, TaskFailure(TENANT, "KeyError", "k"), "FAILURE")

    body = assert_problem(await client.get(f"/internal/v1/results/{job_id}"), 409, "job-failed")
    assert body["extra"]["error"] == {"type": "KeyError", "message": "k"}


async def test_another_tenants_failure_is_not_found(
    client: httpx.AsyncClient, celery_app: Celery
) -> None:
    job_id = str(uuid.uuid4())
    celery_app.backend.mark_as_failure(job_id, TaskFailure("globex", "ValueError", "theirs"))

    response = await client.get(f"/internal/v1/results/{job_id}")

    assert_problem(response, 404, "result-not-found")
    assert "theirs" not in response.text


async def test_failure_without_a_tenant_is_not_found(
    client: httpx.AsyncClient, celery_app: Celery
) -> None:
    job_id = str(uuid.uuid4())
    celery_app.backend.mark_as_failure(job_id, RuntimeError("worker lost"))

    assert_problem(await client.get(f"/internal/v1/results/{job_id}"), 404, "result-not-found")


@pytest.mark.parametrize("state", ["STARTED", "RETRY", "RECEIVED"])
async def test_unfinished_states(client: httpx.AsyncClient, celery_app: Celery, state: str) -> None:
    job_id = str(uuid.uuid4())
    celery_app.backend.store_result(job_id, None, state)

    assert_problem(await client.get(f"/internal/v1/results/{job_id}"), 409, "job-not-finished")


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'{"status": "SUCCESS", "result": 7}', id="not-a-stored-result"),
    ],
)
async def test_malformed_record_is_a_bad_gateway_not_a_crash(
    client: httpx.AsyncClient, redis_backend: Backend, redis_namespace: str, stored: bytes
) -> None:
    job_id = str(uuid.uuid4())
    with redis.Redis.from_url(redis_backend.url) as raw:
        raw.set(RedisKeys(redis_namespace).result(job_id), stored)

    assert_problem(await client.get(f"/internal/v1/results/{job_id}"), 502, "result-unreadable")


async def test_wrong_redis_type_is_a_bad_gateway(
    client: httpx.AsyncClient, redis_backend: Backend, redis_namespace: str
) -> None:
    job_id = str(uuid.uuid4())
    with redis.Redis.from_url(redis_backend.url) as raw:
        raw.hset(RedisKeys(redis_namespace).result(job_id), "status", "SUCCESS")

    assert_problem(await client.get(f"/internal/v1/results/{job_id}"), 502, "result-unreadable")


async def test_missing_internal_token_is_unauthorized(
    client: httpx.AsyncClient, celery_app: Celery
) -> None:
    job_id = str(uuid.uuid4())
    store_success(celery_app, job_id, TENANT, 1)

    no_token = await client.get(
        f"/internal/v1/results/{job_id}", headers={INTERNAL_TOKEN_HEADER: ""}
    )
    wrong_token = await client.get(
        f"/internal/v1/results/{job_id}", headers={INTERNAL_TOKEN_HEADER: "guess"}
    )
    no_tenant = await client.get(f"/internal/v1/results/{job_id}", headers={TENANT_HEADER: ""})

    for response in (no_token, wrong_token, no_tenant):
        assert_problem(response, 401, "unauthorized")
        assert "result" not in response.json()


async def test_job_id_must_be_a_uuid(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/internal/v1/results/not-a-uuid"), 422,
                          "validation-error")  # fmt: skip
    assert body["errors"][0]["field"] == "path.job_id"


async def test_ready_when_redis_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"redis": "ok"}


async def test_redis_down_is_service_unavailable(
    make_settings: Callable[..., Settings], open_client: Any
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with open_client(settings) as client:
        response = await client.get(f"/internal/v1/results/{uuid.uuid4()}")
        ready = await client.get("/readyz")

    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"] == "1"
    assert ready.status_code == 503
    assert ready.json()["status"] == "not-ready"


async def test_redis_connections_carry_the_service_name(
    client: httpx.AsyncClient, redis_backend: Backend
) -> None:
    await client.get("/readyz")  # opens a pooled connection

    with redis.Redis.from_url(redis_backend.url) as raw:
        names = {entry.get("name") for entry in raw.client_list()}
    assert "conveyor-result-service" in names
