"""Every `/v1` operation the running gateway publishes, tried with every kind of bad credential
(401) and with a valid key that lacks the route's scope (403).

The routes come from the gateway's live OpenAPI, so a route added later is in the matrix the day
it exists; one whose path parameter has no filler, or that is missing from the scope table,
fails the suite instead of going untested."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from conveyor_common.scopes import Scope

from .support import (
    ALL_SCOPES,
    ApiKey,
    IdentityProvider,
    KeyMaker,
    Route,
    TenantObjects,
    body_for,
    fill,
    is_problem,
    make_objects,
    unfillable,
)

pytestmark = [pytest.mark.e2e]

TENANT = "authz-owner"

# The scope each route needs: the policy written down independently of the code, so a route
# given the wrong scope fails here. It must name exactly the routes the gateway publishes.
REQUIRED_SCOPE: dict[str, Scope] = {
    "POST /v1/jobs": Scope.JOBS_WRITE,
    "POST /v1/jobs/batch": Scope.JOBS_WRITE,
    "GET /v1/jobs": Scope.JOBS_READ,
    "GET /v1/jobs/{job_id}": Scope.JOBS_READ,
    "GET /v1/jobs/{job_id}/result": Scope.JOBS_READ,
    "GET /v1/jobs/{job_id}/events": Scope.JOBS_READ,
    "POST /v1/jobs/{job_id}/cancel": Scope.JOBS_MANAGE,
    "POST /v1/jobs/{job_id}/retry": Scope.JOBS_MANAGE,
    "GET /v1/tasks": Scope.JOBS_READ,
    "GET /v1/dead-letters": Scope.JOBS_READ,
    "GET /v1/dead-letters/{job_id}": Scope.JOBS_READ,
    "POST /v1/dead-letters/replay": Scope.JOBS_MANAGE,
    "POST /v1/dead-letters/{job_id}/replay": Scope.JOBS_MANAGE,
    "POST /v1/dead-letters/purge": Scope.ADMIN,
    "DELETE /v1/dead-letters/{job_id}": Scope.ADMIN,
    "POST /v1/api-keys": Scope.ADMIN,
    "GET /v1/api-keys": Scope.ADMIN,
    "GET /v1/api-keys/{key_id}": Scope.ADMIN,
    "POST /v1/api-keys/{key_id}/revoke": Scope.ADMIN,
    "POST /v1/api-keys/{key_id}/rotate": Scope.ADMIN,
}


def call(
    gateway: httpx.Client,
    route: Route,
    objects: TenantObjects,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return gateway.request(
        route.method,
        fill(route, objects),
        json=body_for(route, objects),
        headers=headers or {},
    )


@pytest.fixture(scope="module")
def owner(key_maker: KeyMaker) -> ApiKey:
    return key_maker.create(TENANT)


@pytest.fixture(scope="module")
def objects(gateway: httpx.Client, owner: ApiKey, key_maker: KeyMaker) -> TenantObjects:
    # Real objects, so each request is about something that exists and that the caller would
    # otherwise be allowed to touch.
    return make_objects(gateway, owner, key_maker, tag="authz-matrix")


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture(scope="module")
def bad_credentials(
    owner: ApiKey, key_maker: KeyMaker, identity_provider: IdentityProvider
) -> dict[str, dict[str, str]]:
    # Revoked before its first use: the gateway caches a positive answer for a few seconds,
    # and this matrix is about what a revoked key gets, not about that window.
    revoked = key_maker.create(TENANT, name="revoked")
    key_maker.revoke(revoked)
    expired = key_maker.create(TENANT, name="expired", expired=True)
    prefix = owner.plaintext.split("_")[1]
    idp = identity_provider
    hour_ago = int(time.time()) - 3600
    return {
        "no Authorization header": {},
        "Basic scheme": {"Authorization": "Basic c2VjdXJpdHk6dGVzdHM="},
        "Bearer without a credential": {"Authorization": "Bearer"},
        "a bare key without a scheme": {"Authorization": owner.plaintext},
        "a malformed cvk_ key": _bearer("cvk_not-a-key"),
        "an unknown cvk_ key": _bearer(f"cvk_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"),
        "a real prefix with a wrong secret": _bearer(f"cvk_{prefix}_{secrets.token_urlsafe(32)}"),
        "an over-long cvk_ key": _bearer("cvk_" + "a" * 5000),
        "a revoked key": revoked.headers,
        "an expired key": expired.headers,
        "a JWT for another audience": _bearer(idp.token(aud="another-application")),
        "a JWT from another issuer": _bearer(idp.token(iss="https://evil.example/")),
        "an expired JWT": _bearer(idp.token(exp=hour_ago, iat=hour_ago - 60)),
        "a JWT signed by another key with the provider's kid": _bearer(idp.token_by_rogue_key()),
        "an HS256 JWT keyed with the provider's public key": _bearer(
            idp.token_hs256_keyed_with_public_key()
        ),
        "an alg=none JWT": _bearer(idp.token_alg_none()),
        "a JWT without exp": _bearer(idp.token(exp=None)),
        "garbage that is not a JWT": _bearer("e30.e30.e30"),
    }


def test_every_route_path_parameter_has_a_filler(routes: list[Route]) -> None:
    assert unfillable(routes) == [], "add each new path parameter's kind to PARAMETER_KINDS"


def test_the_scope_table_names_exactly_the_published_routes(routes: list[Route]) -> None:
    published = {str(route) for route in routes}
    assert sorted(published - REQUIRED_SCOPE.keys()) == [], "routes missing from REQUIRED_SCOPE"
    assert sorted(REQUIRED_SCOPE.keys() - published) == [], "REQUIRED_SCOPE names gone routes"


CASES = [
    "no Authorization header",
    "Basic scheme",
    "Bearer without a credential",
    "a bare key without a scheme",
    "a malformed cvk_ key",
    "an unknown cvk_ key",
    "a real prefix with a wrong secret",
    "an over-long cvk_ key",
    "a revoked key",
    "an expired key",
    "a JWT for another audience",
    "a JWT from another issuer",
    "an expired JWT",
    "a JWT signed by another key with the provider's kid",
    "an HS256 JWT keyed with the provider's public key",
    "an alg=none JWT",
    "a JWT without exp",
    "garbage that is not a JWT",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_credential_is_401_on_every_route(
    case: str,
    gateway: httpx.Client,
    routes: list[Route],
    objects: TenantObjects,
    bad_credentials: dict[str, dict[str, str]],
) -> None:
    assert sorted(bad_credentials) == sorted(CASES)
    wrong: list[str] = []
    for route in routes:
        answer = call(gateway, route, objects, bad_credentials[case])
        challenge = answer.headers.get("www-authenticate", "")
        if not (is_problem(answer, 401) and challenge.startswith("Bearer ")):
            wrong.append(f"{route}: {answer.status_code} {challenge!r} {answer.text[:200]}")
    assert wrong == [], f"{case}:\n" + "\n".join(wrong)


def test_the_owner_key_passes_every_read_route(
    gateway: httpx.Client, routes: list[Route], objects: TenantObjects, owner: ApiKey
) -> None:
    """The control for the matrix above: the same reads with a good key are let through."""
    refused: list[str] = []
    for route in routes:
        if route.method == "GET":
            answer = call(gateway, route, objects, owner.headers)
            if answer.status_code != 200:
                refused.append(f"{route}: {answer.status_code} {answer.text[:200]}")
    assert refused == []


def test_a_valid_jwt_is_accepted(
    gateway: httpx.Client, identity_provider: IdentityProvider
) -> None:
    """The control for the token cases: right issuer, audience, algorithm and key."""
    token = _bearer(identity_provider.token(tenant="jwt-tenant", scope="jobs:write jobs:read"))
    submitted = gateway.post("/v1/jobs", json={"task": "echo", "args": {}}, headers=token)
    assert submitted.status_code == 202, submitted.text
    read = gateway.get(f"/v1/jobs/{submitted.json()['id']}", headers=token)
    assert read.status_code == 200, read.text
    # The token's tenant is the job's: another tenant's view of the id is a plain 404.
    other = _bearer(identity_provider.token(tenant="jwt-other-tenant", scope="jobs:read"))
    assert is_problem(gateway.get(f"/v1/jobs/{submitted.json()['id']}", headers=other), 404)


def _routes_needing(scope: Scope, routes: list[Route]) -> list[Route]:
    return [route for route in routes if REQUIRED_SCOPE.get(str(route)) == scope]


@pytest.mark.parametrize("scope", list(Scope), ids=str)
def test_a_key_without_the_routes_scope_is_403(
    scope: Scope,
    gateway: httpx.Client,
    routes: list[Route],
    objects: TenantObjects,
    key_maker: KeyMaker,
) -> None:
    lacking = key_maker.create(TENANT, ALL_SCOPES - {scope.value}, name=f"all but {scope}")
    needing = _routes_needing(scope, routes)
    assert needing, f"no route needs {scope}"
    wrong: list[str] = []
    for route in needing:
        answer = call(gateway, route, objects, lacking.headers)
        challenge = answer.headers.get("www-authenticate", "")
        if not (
            is_problem(answer, 403)
            and answer.json().get("extra", {}).get("required_scope") == scope.value
            and 'error="insufficient_scope"' in challenge
        ):
            wrong.append(f"{route}: {answer.status_code} {challenge!r} {answer.text[:200]}")
    assert wrong == [], f"without {scope}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("scope", list(Scope), ids=str)
def test_a_key_with_only_the_routes_scope_passes(
    scope: Scope,
    gateway: httpx.Client,
    routes: list[Route],
    objects: TenantObjects,
    key_maker: KeyMaker,
) -> None:
    only = key_maker.create(TENANT, {scope.value}, name=f"only {scope}")
    wrong: list[str] = []
    for route in _routes_needing(scope, routes):
        answer = call(gateway, route, objects, only.headers)
        if answer.status_code in (401, 403) or answer.status_code >= 500:
            wrong.append(f"{route}: {answer.status_code} {answer.text[:200]}")
    assert wrong == [], f"with only {scope}:\n" + "\n".join(wrong)
