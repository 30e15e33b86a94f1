"""API-key authentication: job-service verifies a key; the gateway remembers a positive answer
for a few seconds, keyed by a SHA-256 digest of the key (never the key, which is never logged).

A remembered answer lasts `ttl_seconds`, never past the key's own expiry, and is dropped at once
when the key is revoked or rotated (`forget`, called by `KeyRevocations` for this replica's own
changes and for every other replica's, heard through Redis).

One question per key at a time: requests that miss the cache while job-service is already being
asked about the same key wait for that answer. Without it, every in-flight request of a busy
client asked again each time the answer expired — a sixth of job-service's work under 32
concurrent single submits."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from pydantic import BaseModel

from api_gateway.auth.principal import Principal
from api_gateway.errors import InvalidCredentials
from api_gateway.upstream import CallContext, Upstream

log = structlog.get_logger("api_gateway.auth")

API_KEY_PREFIX = "cvk_"
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
    expires_at: datetime | None = None


class VerifyRequest(BaseModel):
    key: str


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def fingerprint(credential: str) -> str:
    """A short digest that lets an operator correlate attempts without holding a secret."""
    return key_digest(credential).hex()[:12]


class KeyVerifier:
    def __init__(
        self,
        job_service: Upstream,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._job_service = job_service
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._asking: dict[bytes, asyncio.Task[tuple[Principal, datetime | None]]] = {}
        # Bumped by every forget/clear: an answer asked for before one is used, never kept, so
        # a revocation heard while job-service was being asked cannot be undone by its answer.
        self._generation = 0

    def forget(self, key_id: str) -> int:
        """Drops every remembered answer for the key; returns how many there were. A scan, not
        an index: revocations are rare and the cache is bounded, so the request path stays a
        single dictionary lookup."""
        stale = [d for d, (_, principal) in self._cache.items() if principal.key_id == key_id]
        for digest in stale:
            del self._cache[digest]
        self._generation += 1
        return len(stale)

    def clear(self) -> None:
        self._cache.clear()
        self._generation += 1

    async def verify(self, key: str, ctx: CallContext) -> Principal:
        if len(key) > MAX_KEY_LENGTH:
            log.info("auth.rejected", reason="too-long", fingerprint=fingerprint(key))
            raise InvalidCredentials("The API key is not valid.")
        digest = key_digest(key)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None:
            remembered_until, principal = cached
            if remembered_until > now:
                return principal
            del self._cache[digest]
        asking = self._asking.get(digest)
        if asking is None:
            asking = asyncio.create_task(self._ask_and_remember(key, digest, ctx))
            self._asking[digest] = asking
            asking.add_done_callback(lambda task: self._asked(digest, task))
        # Shielded: a caller that goes away must not cancel the answer the others wait for.
        principal, _ = await asyncio.shield(asking)
        return principal

    def _asked(self, digest: bytes, task: asyncio.Task[tuple[Principal, datetime | None]]) -> None:
        self._asking.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter went away

    async def _ask_and_remember(
        self, key: str, digest: bytes, ctx: CallContext
    ) -> tuple[Principal, datetime | None]:
        generation = self._generation
        principal, key_expires_at = await self._ask(key, digest, ctx)
        if generation == self._generation:
            self._remember(digest, principal, self._clock(), key_expires_at)
        return principal, key_expires_at

    async def _ask(
        self, key: str, digest: bytes, ctx: CallContext
    ) -> tuple[Principal, datetime | None]:
        body = VerifyRequest(key=key).model_dump_json().encode()
        response = await self._job_service.request("POST", VERIFY_PATH, ctx, content=body)
        if response.status_code in _REJECTED:
            log.info("auth.rejected", reason="unknown-key", fingerprint=digest.hex()[:12])
            raise InvalidCredentials("The API key is not valid.")
        self._job_service.check(response, 200)
        answer = self._job_service.parse(response, VerifiedKey)
        principal = Principal(
            tenant_id=answer.tenant_id, key_id=answer.key_id, scopes=frozenset(answer.scopes)
        )
        return principal, answer.expires_at

    def _remember(
        self, digest: bytes, principal: Principal, now: float, expires_at: datetime | None
    ) -> None:
        lifetime = self._ttl
        if expires_at is not None:
            # Never past the key's expiry: a rotation's overlap ends on time on every replica.
            lifetime = min(lifetime, (expires_at - self._wall_clock()).total_seconds())
        if lifetime <= 0:
            return
        self._cache[digest] = (now + lifetime, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
