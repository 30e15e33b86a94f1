"""Per-tenant request rates on `/v1`, counted in Redis by the `limits` library so every gateway
replica shares one budget per tenant.

The limiter fails open: when Redis is unreachable or slow the request is served unlimited,
`ratelimit.unavailable` is logged and `conveyor_rate_limit_failures_total` counted, and Redis is
not asked again for `retry_seconds`. A limiter outage must never take the API down; the upstream
services' own bounds (pools, timeouts, body limits) still hold meanwhile."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("api_gateway.ratelimit")

# Where the dependency leaves the headers for `RateLimitHeadersMiddleware` (in `scope["state"]`).
STATE_KEY = "rate_limit_headers"
_TENANT = "tenant"

STRATEGIES: dict[str, Callable[[RedisStorage], RateLimiter]] = {
    "sliding-window": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}

DECISIONS = Counter(
    "conveyor_rate_limit_decisions_total",
    "Rate-limit decisions on /v1 requests (unchecked: the limiter's Redis was unavailable)",
    ["decision"],
)
FAILURES = Counter(
    "conveyor_rate_limit_failures_total",
    "Rate-limiter Redis calls that failed; the requests went through unlimited",
)


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit's state after this request's hit."""

    item: RateLimitItem
    allowed: bool
    remaining: int
    reset_at: float  # epoch seconds when the window next frees a request


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    quotas: tuple[Quota, ...]
    now: float

    @property
    def reported(self) -> Quota:
        """The quota the headers describe: the one that refused (the longest wait), else the one
        closest to running out."""
        refused = [q for q in self.quotas if not q.allowed]
        if refused:
            return max(refused, key=lambda q: q.reset_at)
        return min(self.quotas, key=lambda q: (q.remaining, -q.reset_at))

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reported.reset_at - self.now))

    def headers(self) -> list[tuple[bytes, bytes]]:
        quota = self.reported
        reset = max(0, math.ceil(quota.reset_at - self.now))
        policy = ", ".join(f"{q.item.amount};w={q.item.get_expiry()}" for q in self.quotas)
        return [
            (b"ratelimit-limit", str(quota.item.amount).encode()),
            (b"ratelimit-remaining", str(0 if not quota.allowed else quota.remaining).encode()),
            (b"ratelimit-reset", str(reset if quota.allowed else self.retry_after).encode()),
            (b"ratelimit-policy", policy.encode()),
        ]


def create_limiter(redis: Redis, *, strategy: str, key_prefix: str) -> RateLimiter:
    """A `limits` limiter on the gateway's own Redis client (its pool, name, TLS and ACL user)."""
    storage = RedisStorage(
        # The URI only selects the redis-py implementation; connections come from the pool.
        "async+redis://",
        implementation="redispy",
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # documented; typed narrowly
        key_prefix=key_prefix,
        wrap_exceptions=True,
    )
    return STRATEGIES[strategy](storage)


class TenantRateLimiter:
    def __init__(
        self,
        limiter: RateLimiter,
        *,
        default: Sequence[RateLimitItem],
        overrides: Mapping[str, Sequence[RateLimitItem]],
        retry_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._default = tuple(default)
        self._overrides = {tenant: tuple(items) for tenant, items in overrides.items()}
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._skip_until = -math.inf

    def limits_for(self, tenant: str) -> tuple[RateLimitItem, ...]:
        return self._overrides.get(tenant, self._default)

    async def check(self, tenant: str) -> Verdict | None:
        """Counts one request of `tenant`; None when nothing was counted (an unlimited tenant,
        or the limiter is unavailable)."""
        items = self.limits_for(tenant)
        if not items:
            DECISIONS.labels("unlimited").inc()
            return None
        if self._clock() < self._skip_until:
            DECISIONS.labels("unchecked").inc()
            return None
        try:
            quotas = await asyncio.gather(*(self._hit(item, tenant) for item in items))
        except (StorageError, RedisError, OSError) as exc:
            self._skip_until = self._clock() + self._retry_seconds
            FAILURES.inc()
            DECISIONS.labels("unchecked").inc()
            # The exception's text can carry the Redis address; its type is enough.
            log.warning(
                "ratelimit.unavailable",
                error=type(exc.__cause__ or exc).__name__,
                retry_in_seconds=self._retry_seconds,
            )
            return None
        verdict = Verdict(all(q.allowed for q in quotas), tuple(quotas), time.time())
        DECISIONS.labels("allowed" if verdict.allowed else "limited").inc()
        return verdict

    async def _hit(self, item: RateLimitItem, tenant: str) -> Quota:
        allowed = await self._limiter.hit(item, _TENANT, tenant)
        stats = await self._limiter.get_window_stats(item, _TENANT, tenant)
        reset_at = stats.reset_time
        if reset_at <= time.time():
            # The window was just counted into, so it cannot be free already: the sliding
            # window reports "now" when asked in the very millisecond its key was created
            # (its TTL is then an exact multiple of the window).
            reset_at = time.time() + item.get_expiry()
        return Quota(item, allowed, stats.remaining, reset_at)


class RateLimitHeadersMiddleware:
    """Adds the `RateLimit-*` headers the rate-limit dependency left in the request state to the
    response, whatever produced it (the route, or a problem handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get(STATE_KEY)
                if extra:
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
