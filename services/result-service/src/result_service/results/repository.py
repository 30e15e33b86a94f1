"""The one Redis read this service makes."""

from __future__ import annotations

from redis.asyncio import Redis

from conveyor_common.redis_keys import RedisKeys


class ResultRepository:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def get_record(self, job_id: str) -> bytes | None:
        # A plain GET, never `AsyncResult.get()`: that subscribes to pub/sub and leaks
        # subscriptions in a long-lived process (pitfall #17).
        raw = await self._redis.get(self._keys.result(job_id))
        return raw.encode() if isinstance(raw, str) else raw
