"""`stack_factory`: a whole Conveyor stack on free ports against the session's PostgreSQL and
Redis, in the test's own database and Redis namespace."""

import time

import httpx
import pytest

pytestmark = pytest.mark.e2e


def _run_echo(client: httpx.Client, payload: dict) -> dict:
    submitted = client.post("/v1/jobs", json={"task": "echo", "args": payload})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 60
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] != "SUCCEEDED":
        assert job["status"] not in ("FAILED", "CANCELLED"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return client.get(f"/v1/jobs/{job_id}/result").json()


def test_runs_a_job_in_its_own_database_and_namespace(stack_factory, redis_client, redis_namespace):
    stack = stack_factory(workers=1, worker_pool="solo")
    assert stack.config.database_url.startswith("postgresql+asyncpg://")
    assert "/conveyor_e2e_" in stack.config.database_url
    key = stack.create_api_key("acme", "e2e")
    with httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        assert _run_echo(client, {"n": 1})["result"] == {"n": 1}
    # What the stack wrote to Redis is in the test's namespace.
    keys = [k.decode() for k in redis_client.scan_iter(match=f"{redis_namespace}:*", count=1000)]
    assert f"{redis_namespace}:catalog" in keys
