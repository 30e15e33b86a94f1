"""api-gateway settings (`CONVEYOR_*` environment variables)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import limits
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from conveyor_common.settings import BaseServiceSettings, RedisSettings

SERVICE_NAME = "api-gateway"

# Signature algorithms a JWT may use: public-key ones only. `none` and the HMAC family are never
# accepted — with HS* a verifier holding only a public key can be fooled into using that public
# key as the shared secret.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
UNLIMITED = "unlimited"

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def parse_rate_limit(text: str) -> list[limits.RateLimitItem]:
    """`"50/second;1000/minute"` as `limits` items; `"unlimited"` as none."""
    if text.strip().lower() == UNLIMITED:
        return []
    return limits.parse_many(text)


class Settings(BaseServiceSettings, RedisSettings):
    port: int = 8000
    job_service_url: str = "http://127.0.0.1:8001"
    result_service_url: str = "http://127.0.0.1:8002"

    # Upstream calls: a short connect timeout so a dead service fails fast (503), a read timeout
    # long enough for a 1,000-job batch commit (else 504).
    upstream_connect_timeout: float = Field(default=1.0, gt=0)
    upstream_read_timeout: float = Field(default=10.0, gt=0)
    upstream_pool_timeout: float = Field(default=2.0, gt=0)
    upstream_max_connections: int = Field(default=100, ge=1)
    # Keyless single submits of one tenant that arrive while this many of its submit calls
    # are in flight share the next call (api_gateway.jobs.coalescer); 0 sends each alone.
    submit_coalescing_calls: int = Field(default=2, ge=0, le=64)
    readiness_timeout: float = Field(default=1.0, gt=0)
    retry_after_seconds: int = Field(default=1, ge=0)

    # Verified keys are remembered this long, so revocation takes effect within it.
    auth_cache_ttl_seconds: float = Field(default=5.0, ge=0)
    auth_cache_max_entries: int = Field(default=10_000, ge=1)

    # JWT bearer tokens from an identity provider: on when a JWKS is configured, as a URL
    # (fetched, cached, refetched for an unknown `kid`) or as inline JSON / a path to a file.
    jwt_jwks_url: str | None = None
    jwt_jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: CommaList = ("RS256", "ES256")
    jwt_tenant_claim: str = "tenant"
    # Claims tried in order for the scopes: a space-separated string (`scope`) or a list (`scp`).
    jwt_scopes_claim: CommaList = ("scope", "scp")
    jwt_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    jwt_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    # An unknown `kid` refetches the JWKS at most this often, so random kids cannot make the
    # gateway hammer the identity provider.
    jwt_jwks_min_refresh_seconds: float = Field(default=10.0, ge=0)
    jwt_jwks_timeout: float = Field(default=2.0, gt=0)

    # Per-tenant request rates on `/v1`, shared by every replica through Redis. `limits` syntax,
    # several limits separated by `;`; overrides map a tenant to its own limits or "unlimited".
    rate_limit_enabled: bool = True
    rate_limit: str = "500/second;20000/minute"
    rate_limit_overrides: dict[str, str] = Field(default_factory=dict)
    rate_limit_strategy: Literal["sliding-window", "moving-window", "fixed-window"] = (
        "sliding-window"
    )
    # The limiter's Redis calls are bounded tightly: when Redis is slow or down the request
    # goes through unlimited (fail open) instead of waiting.
    rate_limit_redis_timeout: float = Field(default=0.25, gt=0)
    # After a Redis failure the limiter is skipped this long before Redis is tried again.
    rate_limit_retry_seconds: float = Field(default=5.0, ge=0)

    # How long uvicorn lets in-flight requests finish after SIGTERM.
    shutdown_grace_seconds: int = 15

    _split_algorithms = field_validator("jwt_algorithms", "jwt_scopes_claim", mode="before")(
        _split_commas
    )

    @field_validator("rate_limit_overrides", mode="before")
    @classmethod
    def _overrides_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.jwt_jwks_url or self.jwt_jwks)

    @model_validator(mode="after")
    def _check_jwt(self) -> Self:
        algorithms = set(self.jwt_algorithms)
        refused = sorted(a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS)
        if refused or not algorithms:
            raise ValueError(
                f"CONVEYOR_JWT_ALGORITHMS may list only public-key algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); refused: "
                f"{', '.join(refused) or 'an empty list'}"
            )
        if not self.jwt_scopes_claim or not self.jwt_tenant_claim:
            raise ValueError("CONVEYOR_JWT_TENANT_CLAIM and CONVEYOR_JWT_SCOPES_CLAIM are required")
        if not self.jwt_enabled:
            return self
        if self.jwt_jwks_url and self.jwt_jwks:
            raise ValueError("set CONVEYOR_JWT_JWKS_URL or CONVEYOR_JWT_JWKS, not both")
        # Without both, a token the same identity provider issued for another application
        # (another audience) or another provider's token would be accepted here.
        if not self.jwt_issuer or not self.jwt_audience:
            raise ValueError(
                "JWT authentication needs CONVEYOR_JWT_ISSUER and CONVEYOR_JWT_AUDIENCE"
            )
        if self.jwt_jwks_url:
            scheme = urlsplit(self.jwt_jwks_url).scheme
            if scheme not in ("https", "http"):
                raise ValueError("CONVEYOR_JWT_JWKS_URL must be an https:// URL")
            # Keys fetched in clear could be swapped by anyone on the path.
            if scheme == "http" and self.environment == "production":
                raise ValueError("CONVEYOR_JWT_JWKS_URL must use https:// in production")
        elif self.jwt_jwks and not self.jwt_jwks.lstrip().startswith("{"):
            if not Path(self.jwt_jwks).is_file():
                raise ValueError(
                    "CONVEYOR_JWT_JWKS must be a JWKS as JSON or the path of a file holding one"
                )
        return self

    @model_validator(mode="after")
    def _check_rate_limits(self) -> Self:
        for name, text in [("CONVEYOR_RATE_LIMIT", self.rate_limit)] + [
            (f"CONVEYOR_RATE_LIMIT_OVERRIDES[{tenant}]", text)
            for tenant, text in self.rate_limit_overrides.items()
        ]:
            try:
                parse_rate_limit(text)
            except ValueError:
                raise ValueError(
                    f'{name}={text!r} is not a rate limit such as "50/second;1000/minute" or '
                    f'"{UNLIMITED}"'
                ) from None
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
