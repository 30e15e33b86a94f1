"""What the security matrices share: an identity provider of the test's own (its JWKS is
given to the gateway inline), API keys made through job-service's own key service, the `/v1`
routes read from the running gateway's OpenAPI, and how a path's parameters are filled with a
real object of the right kind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common.problems import PROBLEM_CONTENT_TYPE
from conveyor_common.scopes import Scope
from conveyor_testing.api import wait_final
from job_service.api_keys.service import ApiKeyService
from job_service.clock import utcnow
from job_service.db import build_engine

ISSUER = "https://idp.security-tests.example/"
AUDIENCE = "conveyor-security-tests"
ALL_SCOPES = frozenset(scope.value for scope in Scope)
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_PARAM = re.compile(r"\{([^}]+)\}")


# --- identity provider ------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class IdentityProvider:
    """Signs tokens as the installation's identity provider would, and forges the ones an
    attacker would try."""

    private: rsa.RSAPrivateKey = field(default_factory=_rsa_key)
    # Same kid, another key: a token an attacker signed with a key of their own.
    rogue: rsa.RSAPrivateKey = field(default_factory=_rsa_key)
    kid: str = "security-tests-1"

    def jwks(self) -> str:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "security-tests",
            "iat": now,
            "exp": now + 600,
            "tenant": "jwt-tenant",
            "scope": " ".join(sorted(ALL_SCOPES)),
        }
        values.update(overrides)
        return values

    def token(self, **claims: Any) -> str:
        return jwt.encode(
            self.claims(**claims), self.private, algorithm="RS256", headers={"kid": self.kid}
        )

    def token_by_rogue_key(self, **claims: Any) -> str:
        return jwt.encode(
            self.claims(**claims), self.rogue, algorithm="RS256", headers={"kid": self.kid}
        )

    def token_hs256_keyed_with_public_key(self, **claims: Any) -> str:
        """The classic confusion attack: HMAC "signed" with the provider's public key, which a
        verifier that let the token pick its algorithm would use as the HMAC secret."""
        pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return self._handmade({"alg": "HS256", "typ": "JWT", "kid": self.kid}, claims, pem)

    def token_alg_none(self, **claims: Any) -> str:
        return self._handmade({"alg": "none", "typ": "JWT", "kid": self.kid}, claims, None)

    def _handmade(self, header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
        # PyJWT refuses to make these tokens, which is why they are built by hand.
        head = _b64url(json.dumps(header).encode())
        body = _b64url(json.dumps(self.claims(**claims)).encode())
        signing_input = f"{head}.{body}"
        if key is None:
            return signing_input + "."
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"


# --- API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    tenant: str
    plaintext: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.plaintext}"}


@asynccontextmanager
async def _session(database_url: str) -> AsyncIterator[AsyncSession]:
    engine = build_engine(database_url, pool_size=1)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session
    finally:
        await engine.dispose()


class KeyMaker:
    """Makes and revokes keys in the stack's database with job-service's own `ApiKeyService`
    (what the admin CLI runs), in this process: a CLI process per key costs seconds on a busy
    machine, and only a service on a clock of its own can make a key that has already expired."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def create(
        self,
        tenant: str,
        scopes: Iterable[str] = ALL_SCOPES,
        *,
        name: str = "security-tests",
        expired: bool = False,
    ) -> ApiKey:
        # An expired key is one made two hours ago to last one hour.
        now = utcnow() - timedelta(hours=2) if expired else utcnow()
        expires_at = now + timedelta(hours=1) if expired else None

        async def create() -> ApiKey:
            async with _session(self.database_url) as session:
                service = ApiKeyService(session, clock=lambda: now)
                created = await service.create(tenant, name, sorted(scopes), expires_at=expires_at)
                await session.commit()
            return ApiKey(created.id, tenant, created.key)

        return asyncio.run(create())

    def revoke(self, key: ApiKey) -> None:
        async def revoke() -> None:
            async with _session(self.database_url) as session:
                await ApiKeyService(session).revoke(key.id)
                await session.commit()

        asyncio.run(revoke())


# --- routes -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Route:
    method: str  # upper case
    path: str  # the OpenAPI template, e.g. /v1/jobs/{job_id}

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def resource(self) -> str:
        """The first segment after /v1: which kind of object a path parameter names."""
        return self.path.split("/")[2]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def v1_routes(gateway: httpx.Client) -> list[Route]:
    """Every operation under /v1 the running gateway publishes."""
    answer = gateway.get("/openapi.json")
    assert answer.status_code == 200, answer.text
    routes = [
        Route(method.upper(), path)
        for path, operations in answer.json()["paths"].items()
        if path.startswith("/v1/")
        for method in operations
        if method in HTTP_METHODS
    ]
    assert routes, "the gateway's OpenAPI lists no /v1 route"
    return sorted(routes)


@dataclass(frozen=True)
class TenantObjects:
    """One tenant's objects of every kind a `/v1` path parameter can name."""

    job: str  # a job that succeeded, with a result
    dead_letter: str  # a job that failed for good
    api_key: str


# (resource, parameter) -> the field of TenantObjects it takes. A route whose parameter is not
# here fails every matrix, so a new route cannot go untested.
PARAMETER_KINDS: dict[tuple[str, str], str] = {
    ("jobs", "job_id"): "job",
    ("dead-letters", "job_id"): "dead_letter",
    ("api-keys", "key_id"): "api_key",
}


def make_objects(
    gateway: httpx.Client, owner: ApiKey, key_maker: KeyMaker, *, tag: str
) -> TenantObjects:
    """A real object of every kind a path can name, owned by `owner`'s tenant and marked with
    `tag`: a job that succeeded (so it has a result and events), one that failed for good (a
    dead letter), and an API key (`admin` only)."""
    submitted = [
        gateway.post("/v1/jobs", json={"task": task, "args": args, "tags": [tag]},
                     headers=owner.headers)
        for task, args in (("echo", {"marker": tag}), ("fail", {"permanent": True}))
    ]  # fmt: skip
    assert [answer.status_code for answer in submitted] == [202, 202], submitted[1].text
    done, failed = (answer.json()["id"] for answer in submitted)
    assert wait_final(gateway, done, owner.plaintext)["status"] == "SUCCEEDED"
    assert wait_final(gateway, failed, owner.plaintext)["status"] == "FAILED"
    # Admin only: a key may rotate only a key whose scopes it holds itself.
    key = key_maker.create(owner.tenant, {"admin"}, name=tag)
    return TenantObjects(job=done, dead_letter=failed, api_key=str(key.id))


def unfillable(routes: Iterable[Route]) -> list[str]:
    return [
        f"{route}: {{{param}}}"
        for route in routes
        for param in route.params
        if (route.resource, param) not in PARAMETER_KINDS
    ]


def fill(route: Route, objects: TenantObjects | Mapping[str, str]) -> str:
    """The route's path with each parameter replaced by the object of its kind."""

    def value(match: re.Match[str]) -> str:
        kind = PARAMETER_KINDS[(route.resource, match[1])]
        if isinstance(objects, TenantObjects):
            return str(getattr(objects, kind))
        return objects[kind]

    return _PARAM.sub(value, route.path)


# Bodies for routes that take one: valid where the route can act on ids of the caller's own, so a
# scope check that passes reaches the route's real work. Any other body route gets `{}` (a 422
# after authentication and the scope check, which is all the matrices need of it).
def body_for(route: Route, objects: TenantObjects | None = None) -> Any:
    if route.method in ("GET", "DELETE"):
        return None
    if route == Route("POST", "/v1/jobs"):
        return {"task": "echo", "args": {}, "tags": ["security-matrix"]}
    if route == Route("POST", "/v1/jobs/batch"):
        return {"jobs": [{"task": "echo", "args": {}, "tags": ["security-matrix"]}]}
    if route == Route("POST", "/v1/api-keys"):
        return {"name": "security-matrix", "scopes": ["admin"]}
    if route.path in ("/v1/dead-letters/replay", "/v1/dead-letters/purge"):
        return {"ids": [objects.dead_letter if objects else str(uuid.uuid4())]}
    return {}


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE)
        and response.json().get("status") == status
    )
