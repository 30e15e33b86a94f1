"""API-key authentication and scopes on every `/v1` route."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from api_gateway.auth import KeyVerifier, key_digest
from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER

pytestmark = pytest.mark.integration

V1_ROUTES = [
    ("POST", "/v1/jobs", {"task": "echo"}),
    ("POST", "/v1/jobs/batch", {"jobs": [{"task": "echo"}]}),
    ("GET", f"/v1/jobs/{uuid.uuid4()}", None),
    ("GET", "/v1/jobs", None),
    ("GET", f"/v1/jobs/{uuid.uuid4()}/result", None),
    ("GET", "/v1/tasks", None),
]
BEARER_CHALLENGE = 'Bearer realm="conveyor"'
# RFC 6750: credentials were sent but are not valid.
INVALID_TOKEN = 'Bearer realm="conveyor", error="invalid_token"'


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("method", "path", "body"), V1_ROUTES)
@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        pytest.param({}, BEARER_CHALLENGE, id="no-header"),
        pytest.param({"Authorization": "Bearer"}, BEARER_CHALLENGE, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, BEARER_CHALLENGE, id="basic-scheme"),
        pytest.param(bearer("cvk_nope00_" + "x" * 43), INVALID_TOKEN, id="unknown-key"),
        pytest.param(bearer("cvk_" + "x" * 253), INVALID_TOKEN, id="oversized-key"),
        # Not an API key, and this gateway trusts no identity provider.
        pytest.param(bearer("x" * 40), INVALID_TOKEN, id="not-a-key-no-jwt"),
    ],
)
async def test_every_route_needs_a_valid_key(
    gateway: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str],
    challenge: str,
) -> None:
    response = await gateway.request(method, path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:conveyor:problem:unauthorized"


async def test_authentication_comes_before_body_validation(
    gateway: httpx.AsyncClient, double: Any
) -> None:
    response = await gateway.post("/v1/jobs", json={"priority": "not-a-number"})

    assert response.status_code == 401
    assert double.calls == []


@pytest.mark.parametrize(
    "credential",
    [pytest.param("cvk_" + "x" * 253, id="oversized-key"), pytest.param("x" * 40, id="not-a-key")],
)
async def test_credentials_that_cannot_be_keys_are_refused_without_asking_job_service(
    gateway: httpx.AsyncClient, double: Any, credential: str
) -> None:
    response = await gateway.get("/v1/tasks", headers=bearer(credential))
    assert response.status_code == 401
    assert double.calls_to("/internal/v1/auth/verify") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "key_name", "needed"),
    [
        ("POST", "/v1/jobs", {"task": "echo"}, "read", "jobs:write"),
        ("POST", "/v1/jobs/batch", {"jobs": [{"task": "echo"}]}, "read", "jobs:write"),
        ("GET", "/v1/jobs", None, "write", "jobs:read"),
        ("GET", f"/v1/jobs/{uuid.uuid4()}", None, "write", "jobs:read"),
        ("GET", f"/v1/jobs/{uuid.uuid4()}/result", None, "write", "jobs:read"),
        ("GET", "/v1/tasks", None, "write", "jobs:read"),
    ],
)
async def test_missing_scope_is_forbidden(
    gateway: httpx.AsyncClient,
    keys: Any,
    double: Any,
    method: str,
    path: str,
    body: object,
    key_name: str,
    needed: str,
) -> None:
    response = await gateway.request(
        method, path, json=body, headers=bearer(getattr(keys, key_name))
    )

    assert response.status_code == 403
    problem = response.json()
    assert problem["type"] == "urn:conveyor:problem:forbidden"
    assert problem["extra"] == {"required_scope": needed}
    # Nothing but the key check reached job-service.
    assert {c.path for c in double.calls} == {"/internal/v1/auth/verify"}


async def test_tenant_and_internal_token_are_sent_upstream(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    response = await gateway.get("/v1/tasks", headers=bearer(keys.read))

    assert response.status_code == 200
    verify = double.calls_to("/internal/v1/auth/verify")[0]
    tasks = double.calls_to("/internal/v1/tasks")[0]
    assert verify.headers[INTERNAL_TOKEN_HEADER.lower()] == keys.internal_token
    assert TENANT_HEADER.lower() not in verify.headers
    assert tasks.headers[INTERNAL_TOKEN_HEADER.lower()] == keys.internal_token
    assert tasks.headers[TENANT_HEADER.lower()] == "acme"
    # The client's key never travels further than the verify call.
    assert "authorization" not in tasks.headers


async def test_verified_key_is_cached_briefly(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    for _ in range(3):
        assert (await gateway.get("/v1/tasks", headers=bearer(keys.read))).status_code == 200

    assert len(double.calls_to("/internal/v1/auth/verify")) == 1


async def test_concurrent_misses_ask_once(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    double.verify_delay_seconds = 0.2
    answers = await asyncio.gather(
        *(gateway.get("/v1/tasks", headers=bearer(keys.read)) for _ in range(20))
    )

    assert [a.status_code for a in answers] == [200] * 20
    assert len(double.calls_to("/internal/v1/auth/verify")) == 1


async def test_concurrent_misses_of_a_wrong_key_are_all_refused(
    gateway: httpx.AsyncClient, double: Any
) -> None:
    double.verify_delay_seconds = 0.2
    wrong = bearer("cvk_wrong0_" + "y" * 43)
    answers = await asyncio.gather(*(gateway.get("/v1/tasks", headers=wrong) for _ in range(5)))

    assert [a.status_code for a in answers] == [401] * 5
    assert len(double.calls_to("/internal/v1/auth/verify")) == 1


async def test_an_answer_asked_for_before_a_revocation_is_not_kept(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    double.verify_delay_seconds = 0.3
    verifier: KeyVerifier = gateway.app.state.key_verifier  # type: ignore[attr-defined]
    request = asyncio.create_task(gateway.get("/v1/tasks", headers=bearer(keys.read)))
    await asyncio.sleep(0.1)  # job-service is being asked
    verifier.forget("any-key-id")
    assert (await request).status_code == 200

    double.verify_delay_seconds = 0.0
    await gateway.get("/v1/tasks", headers=bearer(keys.read))
    assert len(double.calls_to("/internal/v1/auth/verify")) == 2


async def test_cache_expires_and_holds_no_key(gateway: Any, keys: Any, double: Any) -> None:
    app = gateway.app
    now = [1000.0]
    verifier = KeyVerifier(
        app.state.job_service, ttl_seconds=5.0, max_entries=10, clock=lambda: now[0]
    )
    app.state.key_verifier = verifier
    key = keys.read

    await gateway.get("/v1/tasks", headers=bearer(key))
    now[0] += 4.9
    await gateway.get("/v1/tasks", headers=bearer(key))
    assert len(double.calls_to("/internal/v1/auth/verify")) == 1
    now[0] += 0.2
    await gateway.get("/v1/tasks", headers=bearer(key))
    assert len(double.calls_to("/internal/v1/auth/verify")) == 2

    cached = list(verifier._cache)
    assert cached == [key_digest(key)]
    assert all(key not in repr(entry) for entry in verifier._cache.items())


async def test_rejected_keys_are_not_cached(gateway: httpx.AsyncClient, double: Any) -> None:
    wrong = bearer("cvk_wrong0_" + "z" * 43)
    await gateway.get("/v1/tasks", headers=wrong)
    await gateway.get("/v1/tasks", headers=wrong)
    assert len(double.calls_to("/internal/v1/auth/verify")) == 2


async def test_keys_never_reach_the_logs(
    gateway: httpx.AsyncClient, keys: Any, double: Any
) -> None:
    wrong = "cvk_wrong0_" + "q" * 43
    with capture_logs() as logs:
        await gateway.get("/v1/tasks", headers=bearer(wrong))
        await gateway.get("/v1/tasks", headers=bearer(keys.read))

    assert any(entry["event"] == "auth.rejected" for entry in logs)
    text = repr(logs)
    assert wrong not in text
    assert keys.read not in text
