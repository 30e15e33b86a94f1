"""API-key authentication: job-service verifies a key; the gateway remembers a positive answer
for a few seconds, keyed by a SHA-256 digest of the key (never the key, which is never logged).

Every `/v1` route depends on `require(scope)`; the bearer scheme it declares is what OpenAPI
shows as the API's security scheme."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from api_gateway.upstream import PASSED_THROUGH_HEADERS, CallContext, Upstream
from conveyor_common.problems import Forbidden, Unauthorized
from conveyor_common.scopes import Scope

log = structlog.get_logger("api_gateway.auth")

VERIFY_PATH = "/internal/v1/auth/verify"
# job-service's own bound on a presented key; longer ones are refused without asking it.
MAX_KEY_LENGTH = 256
# Statuses with which job-service says "this is not a valid key" (rather than "I failed").
_REJECTED = frozenset({400, 401, 403, 404, 422})


class VerifiedKey(BaseModel):
    """job-service's answer to `POST /internal/v1/auth/verify`."""

    tenant_id: str
    scopes: list[str]
    key_id: str


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    key_id: str
    scopes: frozenset[str]


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyVerifier:
    def __init__(
        self,
        job_service: Upstream,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._job_service = job_service
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    async def verify(self, key: str, ctx: CallContext) -> Principal:
        digest = key_digest(key)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None:
            expires_at, principal = cached
            if expires_at > now:
                return principal
            del self._cache[digest]
        principal = await self._ask(key, digest, ctx)
        self._remember(digest, principal, now)
        return principal

    async def _ask(self, key: str, digest: bytes, ctx: CallContext) -> Principal:
        body = VerifyRequest(key=key).model_dump_json().encode()
        response = await self._job_service.request("POST", VERIFY_PATH, ctx, content=body)
        if response.status_code in _REJECTED:
            # A fingerprint, not the key: lets an operator correlate attempts without a secret.
            log.info("auth.rejected", key_fingerprint=digest.hex()[:12])
            raise Unauthorized("The API key is not valid.")
        self._job_service.check(response, 200)
        answer = self._job_service.parse(response, VerifiedKey)
        return Principal(
            tenant_id=answer.tenant_id, key_id=answer.key_id, scopes=frozenset(answer.scopes)
        )

    def _remember(self, digest: bytes, principal: Principal, now: float) -> None:
        if self._ttl <= 0:
            return
        self._cache[digest] = (now + self._ttl, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)


class VerifyRequest(BaseModel):
    key: str


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="API key",
    description="An API key: `Authorization: Bearer cvk_...`.",
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


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks it holds `scope`."""

    async def authenticated(request: Request, credentials: Credentials) -> Principal:
        if credentials is None or not credentials.credentials:
            raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
        key = credentials.credentials
        if len(key) > MAX_KEY_LENGTH:
            raise Unauthorized("The API key is not valid.")
        verifier: KeyVerifier = request.app.state.key_verifier
        principal = await verifier.verify(key, call_context(request))
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
        structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
        return principal

    return authenticated


Reader = Annotated[Principal, Depends(require(Scope.JOBS_READ))]
Writer = Annotated[Principal, Depends(require(Scope.JOBS_WRITE))]
