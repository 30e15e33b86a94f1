"""Issue 2's path, end to end: real gateway, job-service (PostgreSQL), result-service and a
Celery worker, all as processes on loopback, driven over HTTP as a client would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from conveyor_common.limits import MAX_BODY_BYTES
from conveyor_devstack.stack import Stack
from conveyor_testing.api import auth, wait_all_final, wait_final

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def stack(module_stack: Stack) -> Stack:
    return module_stack


@pytest.fixture
def key(stack: Stack) -> str:
    # A tenant of its own per test, so counts and lists see only this test's jobs.
    return stack.create_api_key(f"acme-{uuid.uuid4().hex[:8]}", "e2e")


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10.0) as c:
        yield c


def job_count(client: httpx.Client, key: str) -> int:
    return len(client.get("/v1/jobs", params={"limit": 500}, headers=auth(key)).json()["items"])


def test_echo_job_runs_and_its_result_comes_back(client: httpx.Client, key: str) -> None:
    submitted = client.post(
        "/v1/jobs", json={"task": "echo", "args": {"hello": "world"}}, headers=auth(key)
    )
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert submitted.headers["location"] == f"/v1/jobs/{job['id']}"
    assert submitted.headers["x-request-id"]

    final = wait_final(client, job["id"], key)
    assert final["status"] == "SUCCEEDED"
    assert final["attempts"] == 1
    assert final["started_at"]
    assert final["finished_at"]

    result = client.get(f"/v1/jobs/{job['id']}/result", headers=auth(key))
    assert result.status_code == 200
    assert result.json() == {"job_id": job["id"], "result": {"hello": "world"}}


def test_a_batch_of_one_thousand_all_succeed(client: httpx.Client, key: str) -> None:
    jobs = [{"task": "echo", "args": {"n": i}} for i in range(1000)]
    answer = client.post("/v1/jobs/batch", json={"jobs": jobs}, headers=auth(key))
    assert answer.status_code == 202, answer.text
    ids = [job["id"] for job in answer.json()["jobs"]]
    assert len(set(ids)) == 1000

    final = wait_all_final(client, ids, key, timeout=90)
    assert {job["status"] for job in final.values()} == {"SUCCEEDED"}


def test_failed_job_reports_its_error_and_result_says_failed(
    client: httpx.Client, key: str
) -> None:
    job = client.post(
        "/v1/jobs",
        json={"task": "fail", "args": {"message": "boom", "permanent": True}},
        headers=auth(key),
    ).json()
    final = wait_final(client, job["id"], key)
    assert final["status"] == "FAILED"
    assert final["error"]["message"] == "boom"

    result = client.get(f"/v1/jobs/{job['id']}/result", headers=auth(key))
    assert result.status_code == 409
    assert result.headers["content-type"].startswith("application/problem+json")
    assert result.json()["type"].endswith("job-failed")


def test_result_of_an_unfinished_job_is_a_distinct_problem(client: httpx.Client, key: str) -> None:
    job = client.post(
        "/v1/jobs", json={"task": "sleep", "args": {"seconds": 5}}, headers=auth(key)
    ).json()
    answer = client.get(f"/v1/jobs/{job['id']}/result", headers=auth(key))
    assert answer.status_code == 409
    assert answer.json()["type"].endswith("job-not-finished")


def test_expired_result_is_410_not_404(
    client: httpx.Client, key: str, stack: Stack, redis_client
) -> None:
    from conveyor_common.redis_keys import RedisKeys

    job = client.post("/v1/jobs", json={"task": "echo", "args": {}}, headers=auth(key)).json()
    assert wait_final(client, job["id"], key)["status"] == "SUCCEEDED"
    # What the result backend's TTL does after a day, done now.
    redis_client.delete(RedisKeys(stack.config.redis_namespace).result(job["id"]))

    answer = client.get(f"/v1/jobs/{job['id']}/result", headers=auth(key))
    assert answer.status_code == 410
    assert answer.json()["type"].endswith("result-expired")
    unknown = client.get("/v1/jobs/0190a0a0-0000-7000-8000-000000000000/result", headers=auth(key))
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "slug", "field"),
    [
        (b'{"task": "echo", "args": ', 400, "malformed-body", None),
        (b'{"task": "no.such.task"}', 422, "unknown-task", None),
        (
            b'{"task": "sleep", "args": {"seconds": "soon"}}',
            422,
            "validation-error",
            "body.args.seconds",
        ),
        (b'{"task": "echo", "status": "SUCCEEDED"}', 422, "validation-error", "body.status"),
        (b'{"task": "echo", "tenant_id": "other"}', 422, "validation-error", "body.tenant_id"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field_and_creates_no_job(
    client: httpx.Client,
    key: str,
    body: bytes,
    status: int,
    slug: str,
    field: str | None,
) -> None:
    before = job_count(client, key)
    answer = client.post(
        "/v1/jobs",
        content=body,
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"].endswith(slug)
    if field:
        assert field in [e["field"] for e in problem["errors"]], problem
    if slug == "unknown-task":
        assert {"echo", "sleep", "fail", "http.request"} <= set(problem["extra"]["known_tasks"])
    assert job_count(client, key) == before


def test_body_over_the_limit_is_413_before_it_is_read(client: httpx.Client, key: str) -> None:
    padding = "x" * (MAX_BODY_BYTES + 10)
    answer = client.post(
        "/v1/jobs",
        content=json.dumps({"task": "echo", "args": {"p": padding}}),
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["type"].endswith("payload-too-large")


@pytest.mark.parametrize(
    "header", [None, "Bearer cvk_nosuchkey_xxxxxxxxxxxxxxxxxxxxxxxxxxxx", "Basic Zm9vOmJhcg=="]
)
def test_missing_or_wrong_key_is_401(client: httpx.Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in [("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/tasks")]:
        answer = client.request(method, path, headers=headers, json={"task": "echo"})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.headers["content-type"].startswith("application/problem+json")


def test_another_tenants_job_answers_exactly_like_a_missing_one(
    client: httpx.Client, key: str, stack: Stack
) -> None:
    other = stack.create_api_key("globex", "e2e")
    theirs = client.post("/v1/jobs", json={"task": "echo", "args": {}}, headers=auth(other)).json()
    missing = "0190a0a0-0000-7000-8000-000000000000"

    for suffix in ("", "/result"):
        mine = client.get(f"/v1/jobs/{theirs['id']}{suffix}", headers=auth(key))
        absent = client.get(f"/v1/jobs/{missing}{suffix}", headers=auth(key))
        assert mine.status_code == absent.status_code == 404
        assert mine.json()["type"] == absent.json()["type"]
        assert mine.json()["title"] == absent.json()["title"]
    listed = client.get("/v1/jobs", headers=auth(key)).json()["items"]
    assert theirs["id"] not in {job["id"] for job in listed}


def test_list_filters_and_pages(client: httpx.Client, key: str) -> None:
    jobs = [{"task": "echo", "args": {"n": i}, "queue": "default"} for i in range(7)]
    ids = [
        j["id"]
        for j in client.post("/v1/jobs/batch", json={"jobs": jobs}, headers=auth(key)).json()[
            "jobs"
        ]
    ]
    wait_all_final(client, ids, key)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, "task": "echo", "status": "SUCCEEDED"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params, headers=auth(key)).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    none = client.get("/v1/jobs", params={"task": "sleep"}, headers=auth(key)).json()
    assert none["items"] == []


def test_catalog_lists_builtin_tasks_with_schemas(client: httpx.Client, key: str) -> None:
    catalog = client.get("/v1/tasks", headers=auth(key)).json()
    by_name = {task["name"]: task for task in catalog["tasks"]}
    assert {"echo", "sleep", "fail", "http.request"} <= set(by_name)
    assert "seconds" in by_name["sleep"]["input_schema"]["properties"]
