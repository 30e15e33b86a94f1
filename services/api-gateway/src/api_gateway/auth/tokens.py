"""JWT bearer tokens from an identity provider, checked here with PyJWT: signature by a key of
the provider's JWKS with a pinned algorithm, issuer, audience, expiry; the tenant and scopes come
from configured claims."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import jwt
import structlog
from pydantic import TypeAdapter, ValidationError

from api_gateway.auth.api_keys import fingerprint
from api_gateway.auth.jwks import JwksCache, UnknownSigningKey
from api_gateway.auth.principal import Principal
from api_gateway.errors import InvalidCredentials
from conveyor_common.jobs import TenantId

log = structlog.get_logger("api_gateway.auth")

# Real tokens are a few kilobytes; the bound keeps parsing cheap.
MAX_TOKEN_LENGTH = 8_192
_TENANT = TypeAdapter(TenantId)
# What the client is told per failure: enough to fix a client, nothing about the keys.
_REASONS: dict[type[jwt.PyJWTError], str] = {
    jwt.ExpiredSignatureError: "The token has expired.",
    jwt.ImmatureSignatureError: "The token is not valid yet.",
    jwt.InvalidAudienceError: "The token is for another audience.",
    jwt.InvalidIssuerError: "The token is from another issuer.",
    jwt.InvalidAlgorithmError: "The token's algorithm is not accepted.",
    jwt.MissingRequiredClaimError: "The token lacks a required claim.",
    jwt.InvalidSignatureError: "The token's signature is not valid.",
}


class JwtVerifier:
    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str],
        tenant_claim: str,
        scopes_claims: Iterable[str],
        leeway_seconds: float,
    ) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._tenant_claim = tenant_claim
        self._scopes_claims = tuple(scopes_claims)
        self._leeway = leeway_seconds

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH:
            self._reject(token, "too-long", "The token is not valid.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            self._reject(token, "malformed", "The token is not valid.")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            self._reject(token, "algorithm", "The token's algorithm is not accepted.")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            self._reject(token, "malformed", "The token is not valid.")
        try:
            key = await self._jwks.signing_key(kid, algorithm)
        except UnknownSigningKey as exc:
            self._reject(token, "unknown-key", "The token is signed by an unknown key.", str(exc))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            detail = next(
                (text for kind, text in _REASONS.items() if isinstance(exc, kind)),
                "The token is not valid.",
            )
            self._reject(token, type(exc).__name__, detail)
        return Principal(
            tenant_id=self._tenant(token, claims),
            key_id=str(claims.get("sub") or ""),
            scopes=self._scopes(token, claims),
            method="jwt",
        )

    def _tenant(self, token: str, claims: Mapping[str, Any]) -> str:
        value = claims.get(self._tenant_claim)
        try:
            return _TENANT.validate_python(value)
        except ValidationError:
            self._reject(
                token,
                "tenant-claim",
                f"The token's `{self._tenant_claim}` claim is missing or not a tenant id.",
            )

    def _scopes(self, token: str, claims: Mapping[str, Any]) -> frozenset[str]:
        for name in self._scopes_claims:
            if name not in claims:
                continue
            value = claims[name]
            if isinstance(value, str):
                return frozenset(value.split())
            if isinstance(value, list) and all(isinstance(s, str) for s in value):
                return frozenset(value)
            self._reject(token, "scopes-claim", f"The token's `{name}` claim is malformed.")
        return frozenset()

    def _reject(self, token: str, reason: str, detail: str, why: str | None = None) -> NoReturn:
        log.info("auth.token_rejected", reason=reason, why=why, fingerprint=fingerprint(token))
        raise InvalidCredentials(detail)
