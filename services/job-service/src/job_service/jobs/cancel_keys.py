"""The Redis side of a cancel: `RedisKeys.cancel(job_id)`, which workers check before they run
an attempt (skip) and while it runs (stop).

PostgreSQL holds the cancel itself; the key is a signal. It is written twice on purpose: here,
right after the cancel commits and before the answer (so once a client has its answer, no
worker starts the job), and by the outbox relay from the cancel's outbox row (so it is written
even when Redis was unreachable at the time)."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conveyor_common.redis_keys import RedisKeys

log = structlog.get_logger("job_service.cancel_keys")


class CancelKeys:
    def __init__(
        self, redis: Redis, keys: RedisKeys, *, ttl_seconds: int, timeout_seconds: float = 1.0
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds
        self._timeout = timeout_seconds

    async def write(self, job_id: uuid.UUID) -> bool:
        """Best effort and bounded in time: False when Redis could not be told (the relay will)."""
        try:
            await asyncio.wait_for(
                self._redis.set(self._keys.cancel(str(job_id)), "1", ex=self._ttl), self._timeout
            )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("jobs.cancel_key_deferred", job_id=str(job_id), error=type(exc).__name__)
            return False
        return True
