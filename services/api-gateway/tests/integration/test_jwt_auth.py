"""JWT bearer tokens as the second way in: keys made here, published by a real HTTP JWKS endpoint,
checked by the gateway for signature, pinned algorithm, issuer, audience, expiry, tenant and
scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from structlog.testing import capture_logs

from api_gateway.auth.jwks import JwksError
from conveyor_common.settings import TENANT_HEADER

pytestmark = pytest.mark.integration

ISSUER = "https://idp.example.test/"
AUDIENCE = "conveyor-api"
INVALID_TOKEN = 'Bearer realm="conveyor", error="invalid_token"'
UNAUTHORIZED = "urn:conveyor:problem:unauthorized"

V1_ROUTES = [
    ("POST", "/v1/jobs", {"task": "echo"}),
    ("POST", "/v1/jobs/batch", {"jobs": [{"task": "echo"}]}),
    ("GET", f"/v1/jobs/{uuid.uuid4()}", None),
    ("GET", "/v1/jobs", None),
    ("GET", f"/v1/jobs/{uuid.uuid4()}/result", None),
    ("GET", "/v1/tasks", None),
]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def jwk(self, **extra: Any) -> dict[str, Any]:
        exporter = RSAAlgorithm if self.algorithm.startswith(("RS", "PS")) else ECAlgorithm
        data: dict[str, Any] = exporter.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", **extra}

    def sign(self, claims: dict[str, Any], *, algorithm: str | None = None, **header: Any) -> str:
        return jwt.encode(
            claims,
            self.private,
            algorithm=algorithm or self.algorithm,
            headers={"kid": self.kid, **header},
        )

    def public_pem(self) -> bytes:
        key = self.private.public_key()
        pem: bytes = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem


@dataclass(frozen=True)
class Keys:
    rsa: SigningKey
    ec: SigningKey
    rotated: SigningKey  # published only once a test rotates to it
    rogue: SigningKey  # same kid as `rsa`, a different key: an attacker's


@pytest.fixture(scope="module")
def signing() -> Keys:
    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(
        rsa=SigningKey("rsa-1", "RS256", rsa_key()),
        ec=SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        rotated=SigningKey("rsa-2", "RS256", rsa_key()),
        rogue=SigningKey("rsa-1", "RS256", rsa_key()),
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "exp": now + 300,
        "tenant": "acme",
        "scope": "jobs:read jobs:write",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], body: dict[str, Any], key: bytes | None = None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def publish(jwks_double: Any, signing: Keys) -> Any:
    jwks_double.publish(signing.rsa.jwk(), signing.ec.jwk(alg="ES256"))
    return jwks_double


@pytest.fixture
def jwt_settings(jwks_url: str) -> dict[str, Any]:
    return {
        "jwt_jwks_url": jwks_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_leeway_seconds": 0,
    }


@pytest.fixture
async def gateway(
    open_gateway: Any, double: Any, publish: Any, jwt_settings: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with open_gateway(**jwt_settings) as client:
        yield client


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == UNAUTHORIZED


@pytest.mark.parametrize(
    ("key_name", "extra"),
    [
        pytest.param("rsa", {}, id="RS256-scope-string"),
        pytest.param("ec", {"scope": None, "scp": ["jobs:read"]}, id="ES256-scp-list"),
    ],
)
async def test_a_valid_token_is_accepted_and_names_the_tenant(
    gateway: httpx.AsyncClient, double: Any, signing: Keys, key_name: str, extra: dict[str, Any]
) -> None:
    token = getattr(signing, key_name).sign(claims(**extra))

    response = await gateway.get("/v1/tasks", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert double.calls_to("/internal/v1/auth/verify") == []  # job-service knows no tokens
    tasks = double.calls_to("/internal/v1/tasks")[0]
    assert tasks.headers[TENANT_HEADER.lower()] == "acme"
    assert "authorization" not in tasks.headers


async def test_custom_tenant_and_scope_claims(
    open_gateway: Any, double: Any, publish: Any, jwt_settings: dict[str, Any], signing: Keys
) -> None:
    token = signing.rsa.sign(
        claims(
            tenant=None, scope=None, **{"https://conveyor/team": "globex", "roles": ["jobs:read"]}
        )
    )
    async with open_gateway(
        **jwt_settings, jwt_tenant_claim="https://conveyor/team", jwt_scopes_claim="roles"
    ) as gateway:
        response = await gateway.get("/v1/tasks", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert double.calls_to("/internal/v1/tasks")[0].headers[TENANT_HEADER.lower()] == "globex"


async def test_token_scopes_are_enforced(gateway: httpx.AsyncClient, signing: Keys) -> None:
    token = signing.rsa.sign(claims(scope="jobs:read"))

    response = await gateway.post("/v1/jobs", json={"task": "echo"}, headers=bearer(token))

    assert response.status_code == 403
    assert response.json()["extra"] == {"required_scope": "jobs:write"}


async def test_api_keys_still_work_beside_tokens(gateway: httpx.AsyncClient, keys: Any) -> None:
    response = await gateway.get("/v1/tasks", headers=bearer(keys.read))
    assert response.status_code == 200


def _wrong_audience(k: Keys) -> str:
    return k.rsa.sign(claims(aud="another-app"))


def _wrong_algorithm(k: Keys) -> str:
    # Validly signed, but RS384 is not in the pinned list.
    return k.rsa.sign(claims(), algorithm="RS384")


def _expired(k: Keys) -> str:
    return k.rsa.sign(claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600))


@pytest.mark.parametrize(("method", "path", "body"), V1_ROUTES)
@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(_wrong_audience, id="wrong-audience"),
        pytest.param(_wrong_algorithm, id="wrong-algorithm"),
        pytest.param(_expired, id="expired"),
    ],
)
async def test_every_route_refuses_bad_tokens(
    gateway: httpx.AsyncClient,
    double: Any,
    signing: Keys,
    method: str,
    path: str,
    body: object,
    make_token: Any,
) -> None:
    response = await gateway.request(method, path, json=body, headers=bearer(make_token(signing)))

    assert_invalid_token(response)
    assert [c.path for c in double.calls] == []  # nothing reached an upstream


def _forged(k: Keys) -> dict[str, str]:
    now = int(time.time())
    body = claims(iat=now, exp=now + 300)
    return {
        "wrong-issuer": k.rsa.sign(claims(iss="https://evil.example/")),
        "no-expiry": k.rsa.sign(claims(exp=None)),
        "no-audience": k.rsa.sign(claims(aud=None)),
        "not-yet-valid": k.rsa.sign(claims(nbf=now + 3600)),
        "alg-none": unsigned_token({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, body),
        # The classic confusion: HMAC "signed" with the provider's public key as the secret.
        "hs256-with-public-key": unsigned_token(
            {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, body, key=k.rsa.public_pem()
        ),
        "bad-signature": k.rogue.sign(claims()),
        "unknown-kid": k.rotated.sign(claims()),
        "key-of-another-type": k.rsa.sign(claims(), kid="ec-1"),
        "no-tenant": k.rsa.sign(claims(tenant=None)),
        "bad-tenant": k.rsa.sign(claims(tenant="Acme Corp!")),
        "malformed-scope": k.rsa.sign(claims(scope=42)),
        "garbage": "not.a.jwt",
        "tampered-payload": _tamper(k.rsa.sign(claims(tenant="acme"))),
        "too-long": k.rsa.sign(claims(padding="x" * 9000)),
    }


def _tamper(token: str) -> str:
    header, _payload, signature = token.split(".")
    return ".".join([header, b64url(json.dumps(claims(tenant="globex")).encode()), signature])


@pytest.mark.parametrize(
    "case",
    ["wrong-issuer", "no-expiry", "no-audience", "not-yet-valid", "alg-none",
     "hs256-with-public-key", "bad-signature", "unknown-kid", "key-of-another-type", "no-tenant", "bad-tenant", "malformed-scope", "garbage",
     "tampered-payload", "too-long"],
)  # fmt: skip
async def test_forged_and_malformed_tokens_are_refused(
    gateway: httpx.AsyncClient, double: Any, signing: Keys, case: str
) -> None:
    response = await gateway.get("/v1/tasks", headers=bearer(_forged(signing)[case]))

    assert_invalid_token(response)
    assert double.calls == []


async def test_a_key_declaring_its_algorithm_refuses_others(
    open_gateway: Any, double: Any, publish: Any, jwt_settings: dict[str, Any], signing: Keys
) -> None:
    # RS384 is allowed here, but the published key says it is for RS256 only.
    publish.publish(signing.rsa.jwk(alg="RS256"))
    token = signing.rsa.sign(claims(), algorithm="RS384")
    async with open_gateway(**jwt_settings, jwt_algorithms="RS256,RS384") as gateway:
        assert_invalid_token(await gateway.get("/v1/tasks", headers=bearer(token)))


async def test_a_rotated_key_is_fetched_when_first_seen(
    open_gateway: Any, double: Any, publish: Any, jwt_settings: dict[str, Any], signing: Keys
) -> None:
    token = signing.rotated.sign(claims())
    async with open_gateway(**jwt_settings, jwt_jwks_min_refresh_seconds=0) as gateway:
        assert_invalid_token(await gateway.get("/v1/tasks", headers=bearer(token)))
        fetched = publish.fetches
        assert fetched == 2  # first use, then once more for the unknown kid

        publish.publish(signing.rsa.jwk(), signing.rotated.jwk())
        response = await gateway.get("/v1/tasks", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert publish.fetches == fetched + 1


async def test_unknown_kids_cannot_make_the_gateway_hammer_the_provider(
    gateway: httpx.AsyncClient, publish: Any, signing: Keys
) -> None:
    assert (
        await gateway.get("/v1/tasks", headers=bearer(signing.rsa.sign(claims())))
    ).status_code == 200
    for _ in range(10):
        forged = SigningKey(uuid.uuid4().hex, "RS256", signing.rogue.private).sign(claims())
        assert_invalid_token(await gateway.get("/v1/tasks", headers=bearer(forged)))

    assert publish.fetches == 1


async def test_provider_down_before_any_key_is_known_is_503(
    open_gateway: Any, double: Any, jwt_settings: dict[str, Any], unused_port: int, signing: Keys
) -> None:
    settings = {**jwt_settings, "jwt_jwks_url": f"http://127.0.0.1:{unused_port}/jwks.json"}
    async with open_gateway(**settings) as gateway:
        response = await gateway.get("/v1/tasks", headers=bearer(signing.rsa.sign(claims())))

    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["type"] == "urn:conveyor:problem:service-unavailable"


async def test_known_keys_outlive_a_provider_outage(
    open_gateway: Any, double: Any, publish: Any, jwt_settings: dict[str, Any], signing: Keys
) -> None:
    token = signing.rsa.sign(claims())
    async with open_gateway(
        **jwt_settings, jwt_jwks_cache_seconds=0.001, jwt_jwks_min_refresh_seconds=0
    ) as gateway:
        assert (await gateway.get("/v1/tasks", headers=bearer(token))).status_code == 200
        publish.status = 500
        response = await gateway.get("/v1/tasks", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert publish.fetches == 2  # it did try to refresh


@pytest.mark.parametrize("where", ["inline", "file"])
async def test_jwks_from_settings(
    open_gateway: Any, double: Any, signing: Keys, tmp_path: Path, where: str
) -> None:
    document = json.dumps({"keys": [signing.ec.jwk()]})
    if where == "file":
        path = tmp_path / "jwks.json"
        path.write_text(document)
        document = str(path)
    async with open_gateway(jwt_jwks=document, jwt_issuer=ISSUER, jwt_audience=AUDIENCE) as gateway:
        good = await gateway.get("/v1/tasks", headers=bearer(signing.ec.sign(claims())))
        bad = await gateway.get("/v1/tasks", headers=bearer(signing.rsa.sign(claims())))

    assert good.status_code == 200, good.text
    assert_invalid_token(bad)


async def test_an_unreadable_inline_jwks_stops_start_up(open_gateway: Any) -> None:
    with pytest.raises(JwksError, match="no public signing key"):
        async with open_gateway(
            jwt_jwks='{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}',
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
        ):
            pass


async def test_tokens_never_reach_the_logs(gateway: httpx.AsyncClient, signing: Keys) -> None:
    good = signing.rsa.sign(claims())
    bad = _wrong_audience(signing)
    with capture_logs() as logs:
        await gateway.get("/v1/tasks", headers=bearer(good))
        await gateway.get("/v1/tasks", headers=bearer(bad))

    rejected = [e for e in logs if e["event"] == "auth.token_rejected"]
    assert [e["reason"] for e in rejected] == ["InvalidAudienceError"]
    assert good not in repr(logs)
    assert bad not in repr(logs)
