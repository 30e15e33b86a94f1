"""Bad input gets a 4xx problem+json that names the field and the reason, and creates nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conveyor_common import limits
from job_service.models import Job

PROBLEM = "application/problem+json"


def _fields(response: Any) -> dict[str, str]:
    return {e["field"]: e["reason"] for e in response.json().get("errors", [])}


async def _assert_nothing_stored(h: Any) -> None:
    assert await h.count(Job) == 0
    assert await h.outbox_size() == 0


async def test_malformed_json_is_400(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.client.post(
        "/internal/v1/jobs",
        content=b'{"task": "echo",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:conveyor:problem:malformed-body"
    await _assert_nothing_stored(h)


async def test_unknown_task_is_422_listing_known_tasks(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.submit({"task": "no.such.task"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:conveyor:problem:unknown-task"
    assert problem["extra"]["known_tasks"] == ["echo", "flaky", "noop", "reports.build"]
    assert _fields(response) == {"body.task": "no worker advertises this task"}
    await _assert_nothing_stored(h)


async def test_args_failing_the_schema_name_the_field_never_the_value(quiet_harness: Any) -> None:
    h = quiet_harness
    secret = "hunter2-secret-value"
    response = await h.submit({"task": "echo", "args": {"x": secret, "extra": secret}})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:conveyor:problem:validation-error"
    assert _fields(response) == {
        "body.args.x": "must be of type 'integer'",
        "body.args.extra": "is not allowed",
    }
    assert secret not in response.text

    missing = await h.submit({"task": "echo", "args": {}})
    assert _fields(missing) == {"body.args.x": "is required"}
    negative = await h.submit({"task": "echo", "args": {"x": -5}})
    assert _fields(negative) == {"body.args.x": "must be >= 0"}
    assert "-5" not in negative.text
    await _assert_nothing_stored(h)


async def test_batch_errors_name_the_job_index(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.client.post(
        "/internal/v1/jobs/batch",
        json={"jobs": [{"task": "echo", "args": {"x": 1}}, {"task": "echo", "args": {"x": "a"}}]},
    )
    assert response.status_code == 422
    assert _fields(response) == {"body.jobs.1.args.x": "must be of type 'integer'"}

    unknown = await h.client.post(
        "/internal/v1/jobs/batch", json={"jobs": [{"task": "noop"}, {"task": "nope"}]}
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "urn:conveyor:problem:unknown-task"
    assert list(_fields(unknown)) == ["body.jobs.1.task"]
    await _assert_nothing_stored(h)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"status": "SUCCEEDED"}, "body.status"),
        ({"tenant_id": "globex"}, "body.tenant_id"),
        ({"attempts": 5}, "body.attempts"),
        ({"id": str(uuid.uuid4())}, "body.id"),
    ],
)
async def test_server_owned_fields_are_refused(
    quiet_harness: Any, extra: dict[str, Any], field: str
) -> None:
    h = quiet_harness
    response = await h.submit({"task": "noop", **extra})
    assert response.status_code == 422
    assert field in _fields(response)
    await _assert_nothing_stored(h)


async def test_body_over_the_limit_is_413(quiet_harness: Any) -> None:
    h = quiet_harness
    body = b'{"task": "noop", "args": {"blob": "' + b"a" * limits.MAX_BODY_BYTES + b'"}}'
    response = await h.client.post(
        "/internal/v1/jobs", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["extra"] == {"limit": limits.MAX_BODY_BYTES}
    assert response.headers["x-request-id"]

    async def chunks() -> Any:  # no Content-Length: counted while reading
        for _ in range(limits.MAX_BODY_BYTES // 65_536 + 2):
            yield b"a" * 65_536

    streamed = await h.client.post(
        "/internal/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    await _assert_nothing_stored(h)


async def test_missing_or_wrong_internal_token_is_401(quiet_harness: Any) -> None:
    h = quiet_harness
    headers = {"X-Conveyor-Internal-Token": ""}
    for response in (
        await h.submit({"task": "noop"}, headers=headers),
        await h.submit({"task": "noop"}, headers={"X-Conveyor-Internal-Token": "wrong"}),
        await h.client.get("/internal/v1/jobs", headers=headers),
        await h.client.get("/internal/v1/tasks", headers=headers),
        await h.client.post("/internal/v1/auth/verify", json={"key": "x"}, headers=headers),
    ):
        assert response.status_code == 401, response.request.url
        assert response.json()["type"] == "urn:conveyor:problem:unauthorized"
    missing_tenant = await h.submit({"task": "noop"}, headers={"X-Conveyor-Tenant": ""})
    assert missing_tenant.status_code == 401
    await _assert_nothing_stored(h)


async def test_another_tenants_job_is_404_like_a_missing_one(quiet_harness: Any) -> None:
    h = quiet_harness
    job = (await h.submit({"task": "noop"})).json()

    other = await h.client.get(
        f"/internal/v1/jobs/{job['id']}", headers={"X-Conveyor-Tenant": "globex"}
    )
    missing_id = uuid.uuid4()
    missing = await h.client.get(f"/internal/v1/jobs/{missing_id}")

    assert other.status_code == missing.status_code == 404
    strip = {"detail", "instance", "request_id"}
    assert {k: v for k, v in other.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }
    assert other.json()["type"] == "urn:conveyor:problem:job-not-found"
    assert other.json()["detail"].replace(job["id"], "ID") == missing.json()["detail"].replace(
        str(missing_id), "ID"
    )

    not_a_uuid = await h.client.get("/internal/v1/jobs/not-a-uuid")
    assert not_a_uuid.status_code == 422
    assert "path.job_id" in _fields(not_a_uuid)


async def test_bad_list_parameters_name_the_query_field(quiet_harness: Any) -> None:
    h = quiet_harness
    for params, field in [
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"cursor": "AAAA"}, "query.cursor"),
        ({"limit": limits.MAX_PAGE_SIZE + 1}, "query.limit"),
        ({"status": "DONE"}, "query.status"),
        ({"created_after": "2026-01-01T00:00:00"}, "query.created_after"),
    ]:
        response = await h.client.get("/internal/v1/jobs", params=params)
        assert response.status_code == 422, params
        assert field in _fields(response), (params, response.json())


async def test_bad_idempotency_key_header_is_422(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.submit({"task": "noop"}, headers={"Idempotency-Key": "k" * 201})
    assert response.status_code == 422
    assert "header.Idempotency-Key" in _fields(response)
    await _assert_nothing_stored(h)
