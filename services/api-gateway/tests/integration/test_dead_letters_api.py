"""`/v1/dead-letters` through the gateway: listing with filters, reading, replaying and purging;
scopes (`jobs:read`, `jobs:manage`, `admin`), validation at the edge, relaying of job-service's
problems, tenant isolation."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

PROBLEM = "urn:conveyor:problem:"
INTERNAL = "/internal/v1/dead-letters"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def reader(keys: Any) -> dict[str, str]:
    return bearer(keys.read)


@pytest.fixture
def manager(keys: Any) -> dict[str, str]:
    return bearer(keys.manage)


@pytest.fixture
def admin(keys: Any) -> dict[str, str]:
    return bearer(keys.admin)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def only_auth_reached_upstream(double: Any) -> bool:
    return {c.path for c in double.calls} <= {"/internal/v1/auth/verify"}


async def test_list_shows_the_tenants_dead_letters_with_their_history(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    older = double.add_dead_letter("acme")
    newer = double.add_dead_letter("acme")
    double.add_dead_letter("globex")

    response = await gateway.get("/v1/dead-letters", headers=reader)

    assert response.status_code == 200
    page = response.json()
    assert [d["id"] for d in page["items"]] == [newer, older]
    assert page["next_cursor"] is None
    first = page["items"][0]
    assert first["status"] == "FAILED"
    assert first["error"] == {"type": "TimeLimitExceeded", "message": "over 300 s"}
    assert first["traceback"].startswith("Traceback")
    assert [e["attempt"] for e in first["history"]] == [1, 2, 3]


async def test_list_forwards_every_filter(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    response = await gateway.get(
        "/v1/dead-letters",
        params={
            "task": "echo",
            "queue": "default",
            "error_type": "WorkerLost",
            "failed_after": "2025-01-01T00:00:00+00:00",
            "failed_before": "2025-02-01T00:00:00Z",
            "limit": "10",
            "cursor": "abc",
        },
        headers=reader,
    )

    assert response.status_code == 200
    (call,) = double.calls_to(INTERNAL)
    assert call.params == {
        "task": "echo",
        "queue": "default",
        "error_type": "WorkerLost",
        "failed_after": "2025-01-01T00:00:00+00:00",
        "failed_before": "2025-02-01T00:00:00+00:00",
        "limit": "10",
        "cursor": "abc",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "query.limit"),
        ({"limit": "100000"}, "query.limit"),
        ({"failed_after": "2025-01-01T00:00:00"}, "query.failed_after"),
        ({"task": "bad name!"}, "query.task"),
        ({"queue": "bad queue"}, "query.queue"),
        ({"error_type": ""}, "query.error_type"),
        ({"cursor": ""}, "query.cursor"),
    ],
)
async def test_list_refuses_bad_filters(
    gateway: httpx.AsyncClient,
    reader: dict[str, str],
    double: Any,
    params: dict[str, str],
    field: str,
) -> None:
    response = await gateway.get("/v1/dead-letters", params=params, headers=reader)

    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == [field]
    assert double.calls_to(INTERNAL) == []


async def test_get_one(gateway: httpx.AsyncClient, reader: dict[str, str], double: Any) -> None:
    job_id = double.add_dead_letter("acme")

    response = await gateway.get(f"/v1/dead-letters/{job_id}", headers=reader)

    assert response.status_code == 200
    assert response.json()["id"] == job_id
    assert response.json()["failed_at"] == double.dead_letters[job_id]["failed_at"]


@pytest.mark.parametrize("owner", ["globex", None], ids=["another-tenants", "unknown"])
async def test_another_tenants_dead_letter_is_not_found_like_a_missing_one(
    gateway: httpx.AsyncClient,
    reader: dict[str, str],
    manager: dict[str, str],
    admin: dict[str, str],
    double: Any,
    owner: str | None,
) -> None:
    job_id = double.add_dead_letter(owner) if owner else str(uuid.uuid4())

    answers = [
        await gateway.get(f"/v1/dead-letters/{job_id}", headers=reader),
        await gateway.post(f"/v1/dead-letters/{job_id}/replay", headers=manager),
        await gateway.delete(f"/v1/dead-letters/{job_id}", headers=admin),
    ]

    for response in answers:
        assert_problem(response, 404, "dead-letter-not-found")
    if owner:
        assert job_id in double.dead_letters


async def test_replay_one_starts_a_new_cycle(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    job_id = double.add_dead_letter("acme")

    response = await gateway.post(f"/v1/dead-letters/{job_id}/replay", headers=manager)

    assert response.status_code == 202
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    job = response.json()
    assert (job["status"], job["cycle"], job["dead_letter"]) == ("PENDING", 2, False)
    assert "history" not in job  # a job, not a dead letter any more
    again = await gateway.post(f"/v1/dead-letters/{job_id}/replay", headers=manager)
    assert_problem(again, 404, "dead-letter-not-found")


async def test_replay_many_forwards_the_ids_and_relays_what_was_not_found(
    gateway: httpx.AsyncClient, manager: dict[str, str], double: Any
) -> None:
    mine = double.add_dead_letter("acme")
    theirs = double.add_dead_letter("globex")
    unknown = str(uuid.uuid4())

    response = await gateway.post(
        "/v1/dead-letters/replay", json={"ids": [mine, theirs, unknown]}, headers=manager
    )

    assert response.status_code == 202
    assert response.json() == {"replayed": [mine], "not_found": [theirs, unknown]}
    (call,) = double.calls_to(f"{INTERNAL}/replay")
    assert call.headers["content-type"] == "application/json"
    assert json.loads(call.body) == {"ids": [mine, theirs, unknown]}
    assert theirs in double.dead_letters


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": []}, "body.ids"),
        ({"ids": [str(uuid.uuid4())] * 1001}, "body.ids"),
        ({"ids": ["not-a-uuid"]}, "body.ids.0"),
        ({"ids": [str(uuid.uuid4())], "all": True}, "body.all"),
        ({}, "body.ids"),
    ],
)
async def test_replay_many_refuses_bad_bodies(
    gateway: httpx.AsyncClient,
    manager: dict[str, str],
    double: Any,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await gateway.post("/v1/dead-letters/replay", json=body, headers=manager)

    problem = assert_problem(response, 422, "validation-error")
    assert field in [e["field"] for e in problem["errors"]]
    assert only_auth_reached_upstream(double)


async def test_purge_by_ids(gateway: httpx.AsyncClient, admin: dict[str, str], double: Any) -> None:
    first = double.add_dead_letter("acme")
    second = double.add_dead_letter("acme")
    theirs = double.add_dead_letter("globex")

    response = await gateway.post(
        "/v1/dead-letters/purge", json={"ids": [first, theirs]}, headers=admin
    )

    assert response.status_code == 200
    assert response.json() == {"purged": 1}
    assert set(double.dead_letters) == {second, theirs}
    (call,) = double.calls_to(f"{INTERNAL}/purge")
    assert json.loads(call.body) == {"ids": [first, theirs]}


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {}},
        {"filter": {"task": "echo", "error_type": "WorkerLost"}},
        {"filter": {"failed_before": "2025-02-01T00:00:00Z"}},
    ],
)
async def test_purge_by_filter_forwards_exactly_the_filter_given(
    gateway: httpx.AsyncClient, admin: dict[str, str], double: Any, body: dict[str, Any]
) -> None:
    response = await gateway.post("/v1/dead-letters/purge", json=body, headers=admin)

    assert response.status_code == 200
    (call,) = double.calls_to(f"{INTERNAL}/purge")
    assert json.loads(call.body) == body


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": [str(uuid.uuid4())], "filter": {}},
        {"filter": {"failed_after": "2025-01-01T00:00:00"}},
        {"filter": {"status": "FAILED"}},
    ],
)
async def test_purge_refuses_bad_bodies(
    gateway: httpx.AsyncClient, admin: dict[str, str], double: Any, body: dict[str, Any]
) -> None:
    response = await gateway.post("/v1/dead-letters/purge", json=body, headers=admin)

    assert_problem(response, 422, "validation-error")
    assert only_auth_reached_upstream(double)


async def test_delete_one(gateway: httpx.AsyncClient, admin: dict[str, str], double: Any) -> None:
    job_id = double.add_dead_letter("acme")

    response = await gateway.delete(f"/v1/dead-letters/{job_id}", headers=admin)

    assert response.status_code == 204
    assert response.content == b""
    assert job_id not in double.dead_letters
    again = await gateway.delete(f"/v1/dead-letters/{job_id}", headers=admin)
    assert_problem(again, 404, "dead-letter-not-found")


async def test_upstream_validation_problem_is_relayed(
    gateway: httpx.AsyncClient, reader: dict[str, str], double: Any
) -> None:
    """A window job-service refuses (after >= before) comes back as its own 422."""
    window = {"failed_after": "2025-02-01T00:00:00+00:00", "failed_before": "2025-01-01T00:00:00Z"}

    response = await gateway.get("/v1/dead-letters", params=window, headers=reader)

    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["query.failed_after"]
    assert len(double.calls_to(INTERNAL)) == 1


DEAD_LETTER_ROUTES = [
    ("GET", "/v1/dead-letters", None),
    ("GET", "/v1/dead-letters/{id}", None),
    ("POST", "/v1/dead-letters/{id}/replay", None),
    ("POST", "/v1/dead-letters/replay", {"ids": ["{id}"]}),
    ("POST", "/v1/dead-letters/purge", {"ids": ["{id}"]}),
    ("DELETE", "/v1/dead-letters/{id}", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "key_name", "needed"),
    [
        ("GET", "/v1/dead-letters", None, "write", "jobs:read"),
        ("GET", "/v1/dead-letters", None, "admin", "jobs:read"),
        ("GET", "/v1/dead-letters/{id}", None, "write", "jobs:read"),
        ("POST", "/v1/dead-letters/{id}/replay", None, "full", "jobs:manage"),
        ("POST", "/v1/dead-letters/{id}/replay", None, "admin", "jobs:manage"),
        ("POST", "/v1/dead-letters/replay", {"ids": ["{id}"]}, "full", "jobs:manage"),
        ("POST", "/v1/dead-letters/purge", {"ids": ["{id}"]}, "manage", "admin"),
        ("DELETE", "/v1/dead-letters/{id}", None, "manage", "admin"),
    ],
)
async def test_missing_scope_is_forbidden(
    gateway: httpx.AsyncClient,
    keys: Any,
    double: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    key_name: str,
    needed: str,
) -> None:
    job_id = double.add_dead_letter("acme")
    sent = json.loads(json.dumps(body).replace("{id}", job_id)) if body else None

    response = await gateway.request(
        method,
        path.replace("{id}", job_id),
        json=sent,
        headers=bearer(getattr(keys, key_name)),
    )

    problem = assert_problem(response, 403, "forbidden")
    assert problem["extra"] == {"required_scope": needed}
    assert only_auth_reached_upstream(double)
    assert job_id in double.dead_letters


async def test_every_route_needs_a_key(gateway: httpx.AsyncClient, double: Any) -> None:
    job_id = str(uuid.uuid4())
    for method, path, body in DEAD_LETTER_ROUTES:
        sent = json.loads(json.dumps(body).replace("{id}", job_id)) if body else None

        response = await gateway.request(method, path.replace("{id}", job_id), json=sent)

        assert_problem(response, 401, "unauthorized")
    assert double.calls == []


async def test_slow_job_service_is_a_gateway_timeout(
    open_gateway: Any, reader: dict[str, str], double: Any
) -> None:
    double.delay_seconds = 1.0  # every route but auth/verify sleeps past the read timeout
    async with open_gateway(upstream_read_timeout=0.3) as gateway:
        response = await gateway.get("/v1/dead-letters", headers=reader)

    assert_problem(response, 504, "gateway-timeout")
