"""The dependencies every `/v1` route runs, in this order: authenticate (an API key or a JWT),
count the request against the tenant's rate limit, check the scope the route needs.

The bearer scheme declared here is what OpenAPI shows as the API's security scheme."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api_gateway.auth.api_keys import API_KEY_PREFIX, KeyVerifier
from api_gateway.auth.jwks import JwksUnavailable
from api_gateway.auth.principal import Principal
from api_gateway.auth.tokens import JwtVerifier
from api_gateway.errors import InvalidCredentials
from api_gateway.ratelimit import STATE_KEY, TenantRateLimiter
from api_gateway.upstream import PASSED_THROUGH_HEADERS, CallContext
from conveyor_common.problems import Forbidden, RateLimited, ServiceUnavailable, Unauthorized
from conveyor_common.scopes import Scope

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="API key or JWT",
    description=(
        "An API key (`Authorization: Bearer cvk_...`) or, where the installation trusts an "
        "identity provider, a JWT it issued."
    ),
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def call_context(request: Request, tenant_id: str | None = None) -> CallContext:
    passthrough = tuple(
        (name, value)
        for name in PASSED_THROUGH_HEADERS
        if (value := request.headers.get(name)) is not None
    )
    return CallContext(
        request_id=getattr(request.state, "request_id", None),
        tenant_id=tenant_id,
        passthrough=passthrough,
    )


async def authenticate(request: Request, credentials: Credentials) -> Principal:
    """A `cvk_` credential is an API key (job-service knows it); anything else is a JWT when an
    identity provider is configured, else refused."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("Send an API key or a token as `Authorization: Bearer <credential>`.")
    credential = credentials.credentials
    if credential.startswith(API_KEY_PREFIX):
        keys: KeyVerifier = request.app.state.key_verifier
        principal = await keys.verify(credential, call_context(request))
    else:
        tokens: JwtVerifier | None = request.app.state.jwt_verifier
        if tokens is None:
            raise InvalidCredentials("The API key is not valid.")
        try:
            principal = await tokens.verify(credential)
        except JwksUnavailable as exc:
            raise ServiceUnavailable(
                "The identity provider's keys could not be loaded; try again shortly.",
                retry_after=request.app.state.settings.retry_after_seconds or 1,
            ) from exc
    structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


async def rate_limited(request: Request, principal: Authenticated) -> None:
    limiter: TenantRateLimiter | None = request.app.state.rate_limiter
    if limiter is None:
        return
    verdict = await limiter.check(principal.tenant_id)
    if verdict is None:
        return
    setattr(request.state, STATE_KEY, verdict.headers())
    if not verdict.allowed:
        quota = verdict.reported
        raise RateLimited(
            f"This tenant is over its limit of {quota.item}; retry in {verdict.retry_after} s.",
            extra={"limit": str(quota.item), "retry_after_seconds": verdict.retry_after},
            headers={"Retry-After": str(verdict.retry_after)},
        )


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller, counts the request against its tenant's rate
    limit, and checks the caller holds `scope`."""

    async def authorized(
        principal: Authenticated, _limited: Annotated[None, Depends(rate_limited)]
    ) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(
                f"This route needs the `{scope}` scope.",
                extra={"required_scope": str(scope)},
                headers={
                    "WWW-Authenticate": (
                        f'Bearer realm="conveyor", error="insufficient_scope", scope="{scope}"'
                    )
                },
            )
        return principal

    return authorized


Reader = Annotated[Principal, Depends(require(Scope.JOBS_READ))]
Writer = Annotated[Principal, Depends(require(Scope.JOBS_WRITE))]
Manager = Annotated[Principal, Depends(require(Scope.JOBS_MANAGE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
