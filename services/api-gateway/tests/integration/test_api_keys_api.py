"""`/v1/api-keys` through the gateway: the key lifecycle (create, use, list, rotate, revoke),
revocation that takes effect at once on this replica and, through Redis, on the others; the
`admin` scope on every route, no scope escalation, tenant isolation, validation at the edge."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from conveyor_common.redis_keys import RedisKeys

pytestmark = pytest.mark.integration

PROBLEM = "urn:conveyor:problem:"
INTERNAL = "/internal/v1/api-keys"
# Long, so a key that stops working within a test did so because the cache was told, not
# because its entry aged out.
LONG_TTL = {"auth_cache_ttl_seconds": 300.0}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug
    return body


def api_key_calls(double: Any) -> list[Any]:
    return [c for c in double.calls if c.path.startswith(INTERNAL)]


async def works(gateway: httpx.AsyncClient, key: str) -> int:
    """The status a read with `key` gets (200 while the key is valid, 401 after)."""
    return (await gateway.get("/v1/tasks", headers=bearer(key))).status_code


async def listening(gateway: httpx.AsyncClient) -> httpx.AsyncClient:
    """Waits until the gateway hears revocations that other replicas announce."""
    await asyncio.wait_for(gateway.app.state.key_revocations.subscribed.wait(), 5)  # type: ignore[attr-defined]
    return gateway


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def admin(double: Any) -> dict[str, Any]:
    """A tenant admin that may also hand out the job scopes."""
    record: dict[str, Any] = double.add_api_key("acme", ["admin", "jobs:read", "jobs:write"])
    return record


async def test_create_use_list_rotate_and_revoke(
    open_gateway: Any, double: Any, admin: dict[str, Any]
) -> None:
    async with open_gateway(**LONG_TTL) as gateway:
        await listening(gateway)
        created_answer = await gateway.post(
            "/v1/api-keys",
            json={"name": "billing-ci", "scopes": ["jobs:read"]},
            headers=bearer(admin["key"]),
        )
        assert created_answer.status_code == 201, created_answer.text
        created = created_answer.json()
        key = created["key"]
        assert created_answer.headers["location"] == f"/v1/api-keys/{created['id']}"
        assert created_answer.headers["cache-control"] == "no-store"
        [create_call] = api_key_calls(double)
        assert create_call.headers["x-conveyor-tenant"] == "acme"

        assert await works(gateway, key) == 200

        listed = await gateway.get("/v1/api-keys", headers=bearer(admin["key"]))
        assert listed.status_code == 200
        assert created["id"] in [item["id"] for item in listed.json()["items"]]
        assert key not in listed.text
        assert "key" not in listed.json()["items"][0]
        one = await gateway.get(f"/v1/api-keys/{created['id']}", headers=bearer(admin["key"]))
        assert one.json() == {k: v for k, v in created.items() if k != "key"}

        rotated = await gateway.post(
            f"/v1/api-keys/{created['id']}/rotate",
            json={"overlap_seconds": 3600},
            headers=bearer(admin["key"]),
        )
        assert rotated.status_code == 201, rotated.text
        new_key = rotated.json()["created"]["key"]
        assert rotated.headers["location"] == f"/v1/api-keys/{rotated.json()['created']['id']}"
        assert rotated.headers["cache-control"] == "no-store"
        assert rotated.json()["previous"]["status"] == "active"
        assert (await works(gateway, key), await works(gateway, new_key)) == (200, 200)

        for revoked_id, revoked_key in ((rotated.json()["created"]["id"], new_key),
                                        (created["id"], key)):  # fmt: skip
            answer = await gateway.post(
                f"/v1/api-keys/{revoked_id}/revoke", headers=bearer(admin["key"])
            )
            assert answer.status_code == 200
            assert answer.json()["status"] == "revoked"
            # Cached a moment ago, refused now: the revocation dropped the cached answer.
            assert await works(gateway, revoked_key) == 401


async def test_rotation_with_no_overlap_ends_the_old_key_at_once(
    open_gateway: Any, double: Any, admin: dict[str, Any]
) -> None:
    old = double.add_api_key("acme", ["jobs:read"])
    async with open_gateway(**LONG_TTL) as gateway:
        await listening(gateway)
        assert await works(gateway, old["key"]) == 200
        rotated = await gateway.post(
            f"/v1/api-keys/{old['id']}/rotate",
            json={"overlap_seconds": 0},
            headers=bearer(admin["key"]),
        )
        assert rotated.status_code == 201, rotated.text
        assert await works(gateway, old["key"]) == 401
        assert await works(gateway, rotated.json()["created"]["key"]) == 200


async def test_an_expired_key_is_refused_even_when_cached(open_gateway: Any, double: Any) -> None:
    expired = double.add_api_key(
        "acme", ["jobs:read"], expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    async with open_gateway(**LONG_TTL) as gateway:
        await listening(gateway)
        expiring = double.add_api_key(
            "acme", ["jobs:read"], expires_at=datetime.now(UTC) + timedelta(seconds=1)
        )
        assert await works(gateway, expired["key"]) == 401
        assert await works(gateway, expiring["key"]) == 200
        # The answer was cached no longer than the key's own expiry.
        await eventually(lambda: _is(works(gateway, expiring["key"]), 401))
        refused = await gateway.get("/v1/tasks", headers=bearer(expiring["key"]))
        assert refused.headers["www-authenticate"].endswith('error="invalid_token"')


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


async def test_revocation_reaches_the_other_replicas_through_redis(
    open_gateway: Any, double: Any, admin: dict[str, Any], redis_client: redis.Redis,
    redis_namespace: str,
) -> None:  # fmt: skip
    victim = double.add_api_key("acme", ["jobs:read"])
    cli_revoked = double.add_api_key("acme", ["jobs:read"])
    async with open_gateway(**LONG_TTL) as one, open_gateway(**LONG_TTL) as other:
        for gateway in (one, other):
            await listening(gateway)
        assert await works(other, victim["key"]) == 200  # cached by the other replica

        answer = await one.post(f"/v1/api-keys/{victim['id']}/revoke", headers=bearer(admin["key"]))
        assert answer.status_code == 200

        await eventually(lambda: _is(works(other, victim["key"]), 401))

        # What job-service's command line publishes after a revocation there.
        assert await works(other, cli_revoked["key"]) == 200
        double.api_keys[cli_revoked["id"]]["revoked_at"] = datetime.now(UTC).isoformat()
        assert await works(other, cli_revoked["key"]) == 200  # still cached: nobody said
        channel = RedisKeys(redis_namespace).api_key_revocations
        assert redis_client.publish(channel, cli_revoked["id"]) == 2
        await eventually(lambda: _is(works(other, cli_revoked["key"]), 401))


async def test_revocation_without_redis_still_takes_effect_here(
    open_gateway: Any, double: Any, admin: dict[str, Any], unused_port: int
) -> None:
    victim = double.add_api_key("acme", ["jobs:read"])
    with capture_logs() as logs:
        async with open_gateway(
            redis_url=f"redis://127.0.0.1:{unused_port}/0", **LONG_TTL
        ) as gateway:
            assert await works(gateway, victim["key"]) == 200
            answer = await gateway.post(
                f"/v1/api-keys/{victim['id']}/revoke", headers=bearer(admin["key"])
            )
            assert answer.status_code == 200
            assert await works(gateway, victim["key"]) == 401

    events = [entry["event"] for entry in logs]
    assert "auth.revocation_not_broadcast" in events
    assert "auth.revocations_unavailable" in events


async def test_a_replica_that_lost_redis_forgets_everything_when_it_is_back(
    open_gateway: Any, double: Any, own_redis_server: Any
) -> None:
    server = own_redis_server()
    victim = double.add_api_key("acme", ["jobs:read"])
    async with open_gateway(redis_url=server.url, **LONG_TTL) as gateway:
        await listening(gateway)
        assert await works(gateway, victim["key"]) == 200
        server.stop()
        # Revoked elsewhere while this replica could not hear of it.
        double.api_keys[victim["id"]]["revoked_at"] = datetime.now(UTC).isoformat()
        await eventually(lambda: _not_listening(gateway))
        assert await works(gateway, victim["key"]) == 200  # the cached answer, for now
        server.start()
        await eventually(lambda: _is(works(gateway, victim["key"]), 401), timeout=10.0)


async def _not_listening(gateway: httpx.AsyncClient) -> bool:
    return not gateway.app.state.key_revocations.subscribed.is_set()  # type: ignore[attr-defined]


async def test_another_tenants_key_answers_like_a_missing_one_and_is_untouched(
    gateway: httpx.AsyncClient, double: Any, admin: dict[str, Any]
) -> None:
    theirs = double.add_api_key("globex", ["jobs:read"])
    before = dict(theirs)

    for key_id in (theirs["id"], str(uuid.uuid4())):
        for method, path in (("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")):
            answer = await gateway.request(
                method, f"/v1/api-keys/{key_id}{path}", headers=bearer(admin["key"])
            )
            assert_problem(answer, 404, "api-key-not-found")

    listed = await gateway.get("/v1/api-keys", headers=bearer(admin["key"]))
    assert theirs["id"] not in listed.text
    assert double.api_keys[theirs["id"]] == before
    assert await works(gateway, theirs["key"]) == 200


async def test_a_key_cannot_be_given_scopes_its_creator_lacks(
    gateway: httpx.AsyncClient, double: Any, keys: Any
) -> None:
    only_admin = bearer(keys.admin)  # scopes: admin
    mighty = double.add_api_key("acme", ["jobs:read", "jobs:write"])

    escalate = await gateway.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["admin", "jobs:write"]}, headers=only_admin
    )
    rotate = await gateway.post(f"/v1/api-keys/{mighty['id']}/rotate", headers=only_admin)

    body = assert_problem(escalate, 403, "forbidden")
    assert body["errors"] == [
        {"field": "body.scopes", "reason": "not held by the caller: jobs:write"}
    ]
    assert body["extra"] == {"scopes": ["jobs:write"]}
    body = assert_problem(rotate, 403, "forbidden")
    assert body["extra"] == {"scopes": ["jobs:read", "jobs:write"]}
    # Nothing was created or rotated: the only call upstream was the rotation's lookup.
    assert [(c.method, c.path) for c in api_key_calls(double)] == [
        ("GET", f"{INTERNAL}/{mighty['id']}")
    ]
    assert len(double.api_keys) == 1
    assert double.api_keys[mighty["id"]]["expires_at"] is None

    allowed = await gateway.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=only_admin
    )
    assert allowed.status_code == 201


ROUTES = [
    ("POST", "/v1/api-keys", {"name": "x", "scopes": ["jobs:read"]}),
    ("GET", "/v1/api-keys", None),
    ("GET", "/v1/api-keys/{id}", None),
    ("POST", "/v1/api-keys/{id}/revoke", None),
    ("POST", "/v1/api-keys/{id}/rotate", {"overlap_seconds": 0}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_every_route_needs_the_admin_scope(
    gateway: httpx.AsyncClient, double: Any, keys: Any, method: str, path: str, body: Any
) -> None:
    target = double.add_api_key("acme", ["jobs:read"])
    url = path.replace("{id}", target["id"])

    for key in (keys.read, keys.write, keys.manage, keys.full):
        answer = await gateway.request(method, url, json=body, headers=bearer(key))
        problem = assert_problem(answer, 403, "forbidden")
        assert problem["extra"] == {"required_scope": "admin"}
        assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    anonymous = await gateway.request(method, url, json=body)
    assert_problem(anonymous, 401, "unauthorized")

    assert api_key_calls(double) == []
    assert double.api_key_status(target["id"]) == "active"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/api-keys", {"name": "x", "scopes": ["admin"], "tenant_id": "globex"},
         "body.tenant_id"),
        ("/v1/api-keys", {"name": "", "scopes": ["admin"]}, "body.name"),
        ("/v1/api-keys", {"name": "x", "scopes": ["root"]}, "body.scopes.0"),
        ("/v1/api-keys", {"name": "x", "scopes": ["admin"], "expires_at": "2999-01-01T00:00"},
         "body.expires_at"),
        ("/v1/api-keys/{id}/rotate", {"overlap_seconds": -1}, "body.overlap_seconds"),
        ("/v1/api-keys/{id}/rotate", {"overlap_seconds": 10**9}, "body.overlap_seconds"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_at_the_edge_naming_the_field(
    gateway: httpx.AsyncClient, double: Any, keys: Any, path: str, body: Any, field: str
) -> None:
    target = double.add_api_key("acme", ["admin"])

    answer = await gateway.post(
        path.replace("{id}", target["id"]), json=body, headers=bearer(keys.admin)
    )

    problem = assert_problem(answer, 422, "validation-error")
    assert field in [error["field"] for error in problem["errors"]]
    assert api_key_calls(double) == []
