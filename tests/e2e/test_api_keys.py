"""API keys end to end: the first admin key from the command line, then `/v1/api-keys` on the
real gateway and job-service (PostgreSQL): create, use, list, rotate with an overlap, revoke;
expiry, tenant isolation, no scope escalation, and a command-line revocation reaching the
gateway's cache through Redis.

The gateway here remembers verified keys for five minutes, so a key refused within a test was
refused because the gateway was told, not because its cache entry aged out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conveyor_devstack.stack import Stack
from conveyor_testing.api import auth

pytestmark = [pytest.mark.e2e]

ALL = ("admin", "jobs:read", "jobs:write", "jobs:manage")


@pytest.fixture(scope="module")
def stack_options() -> dict[str, Any]:
    # No worker: nothing here waits for a job to run.
    return {"workers": 0, "extra_env": {"CONVEYOR_AUTH_CACHE_TTL_SECONDS": "300"}}


@pytest.fixture
def client(module_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_stack.gateway_url, timeout=15.0) as c:
        yield c


def cli_key(stack: Stack, tenant: str, *scopes: str) -> str:
    """A key made the way a new installation makes its first one."""
    out = stack.run_job_service_command(
        "create-api-key", "--tenant", tenant, "--name", "first-admin", "--scopes", *scopes
    )
    return out.strip()


def status_with(client: httpx.Client, key: str) -> int:
    return client.get("/v1/jobs", headers=auth(key)).status_code


def refused_soon(client: httpx.Client, key: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while status_with(client, key) != 401:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def tenant() -> str:
    return f"keys-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin(module_stack: Stack) -> str:
    """The first key of a tenant, from the command line: every scope, so it can grant them."""
    return cli_key(module_stack, tenant(), *ALL)


def test_key_lifecycle(client: httpx.Client, admin: str) -> None:

    answer = client.post(
        "/v1/api-keys",
        json={"name": "ci", "scopes": ["jobs:read", "jobs:write"]},
        headers=auth(admin),
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    key = created["key"]
    assert status_with(client, key) == 200
    assert client.get("/v1/tasks", headers=auth(key)).status_code == 200
    listed = client.get("/v1/api-keys", headers=auth(admin))
    assert listed.json()["items"][0]["id"] == created["id"]
    assert "first-admin" in [k["name"] for k in listed.json()["items"]]
    assert key.split("_", 2)[2] not in listed.text
    assert admin.split("_", 2)[2] not in listed.text

    rotated = client.post(
        f"/v1/api-keys/{created['id']}/rotate", json={"overlap_seconds": 3600}, headers=auth(admin)
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["created"]
    assert (new["scopes"], new["rotated_from"]) == (["jobs:read", "jobs:write"], created["id"])
    assert (status_with(client, key), status_with(client, new["key"])) == (200, 200)
    again = client.post(f"/v1/api-keys/{created['id']}/rotate", headers=auth(admin))
    assert again.status_code == 409
    assert again.json()["type"] == "urn:conveyor:problem:api-key-not-rotatable"

    for key_id, secret in ((new["id"], new["key"]), (created["id"], key)):
        revoked = client.post(f"/v1/api-keys/{key_id}/revoke", headers=auth(admin))
        assert revoked.status_code == 200
        assert revoked.json()["status"] == "revoked"
        assert status_with(client, secret) == 401
    statuses = {
        k["id"]: k["status"]
        for k in client.get("/v1/api-keys", headers=auth(admin)).json()["items"]
    }
    assert statuses[created["id"]] == statuses[new["id"]] == "revoked"


def test_rotation_with_no_overlap_and_expiry_end_keys_on_time(
    client: httpx.Client, admin: str
) -> None:
    old = client.post(
        "/v1/api-keys", json={"name": "old", "scopes": ["jobs:read"]}, headers=auth(admin)
    ).json()
    assert status_with(client, old["key"]) == 200

    rotated = client.post(
        f"/v1/api-keys/{old['id']}/rotate", json={"overlap_seconds": 0}, headers=auth(admin)
    )
    assert rotated.status_code == 201
    assert status_with(client, old["key"]) == 401
    assert status_with(client, rotated.json()["created"]["key"]) == 200

    ends = datetime.now(UTC) + timedelta(seconds=1.5)
    brief = client.post(
        "/v1/api-keys",
        json={"name": "brief", "scopes": ["jobs:read"], "expires_at": ends.isoformat()},
        headers=auth(admin),
    ).json()
    assert status_with(client, brief["key"]) == 200
    assert refused_soon(client, brief["key"], timeout=4.0)
    assert datetime.now(UTC) >= ends


def test_other_tenants_keys_are_not_found_and_scopes_cannot_grow(
    module_stack: Stack, client: httpx.Client, admin: str
) -> None:
    ours = client.post(
        "/v1/api-keys", json={"name": "admin-only", "scopes": ["admin"]}, headers=auth(admin)
    ).json()["key"]
    theirs_admin = cli_key(module_stack, tenant(), *ALL)
    theirs = client.post(
        "/v1/api-keys", json={"name": "theirs", "scopes": ["jobs:read"]}, headers=auth(theirs_admin)
    ).json()

    for method, suffix in (("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")):
        answer = client.request(method, f"/v1/api-keys/{theirs['id']}{suffix}", headers=auth(ours))
        assert answer.status_code == 404, answer.text
        assert answer.json()["type"] == "urn:conveyor:problem:api-key-not-found"
    assert theirs["id"] not in client.get("/v1/api-keys", headers=auth(ours)).text
    assert status_with(client, theirs["key"]) == 200

    escalation = client.post(
        "/v1/api-keys", json={"name": "more", "scopes": ["jobs:write"]}, headers=auth(ours)
    )
    assert escalation.status_code == 403
    assert escalation.json()["errors"][0]["field"] == "body.scopes"
    names = [k["name"] for k in client.get("/v1/api-keys", headers=auth(ours)).json()["items"]]
    assert "more" not in names


def test_a_command_line_revocation_reaches_the_gateway_cache(
    module_stack: Stack, client: httpx.Client, admin: str
) -> None:
    victim = client.post(
        "/v1/api-keys", json={"name": "victim", "scopes": ["jobs:read"]}, headers=auth(admin)
    ).json()
    assert status_with(client, victim["key"]) == 200  # remembered for five minutes

    module_stack.run_job_service_command("revoke-api-key", "--id", victim["id"])

    assert refused_soon(client, victim["key"], timeout=2.0)
