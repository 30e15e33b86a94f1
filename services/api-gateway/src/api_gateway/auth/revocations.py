"""Revocation reaches every gateway replica at once, not one cache period later.

When a key is revoked or rotated through this gateway, `announce` drops this replica's cached
answers for it before the response is sent, then publishes the key id on a Redis pub/sub channel
(`RedisKeys.api_key_revocations`); every replica's `listen` loop drops its own. job-service's
command line publishes on the same channel.

Pub/sub rather than a set of revoked ids checked on every cache hit: the set would cost every
authenticated request a Redis round trip, which is what the cache exists to save, while pub/sub
costs the request path nothing. What pub/sub can miss (a replica whose subscription was down when
the message went out) stays bounded: the listener empties the whole cache each time it
subscribes again after losing its connection, and any answer is remembered for at most
`CONVEYOR_AUTH_CACHE_TTL_SECONDS`."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from api_gateway.auth.api_keys import KeyVerifier

log = structlog.get_logger("api_gateway.auth.revocations")

# How long one wait for a message lasts: it also paces the connection's health checks.
_POLL_SECONDS = 1.0
_MAX_KEY_ID_LENGTH = 64


class KeyRevocations:
    def __init__(
        self,
        redis: Redis,
        channel: str,
        verifier: KeyVerifier,
        *,
        reconnect_seconds: float = 1.0,
        max_reconnect_seconds: float = 10.0,
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._verifier = verifier
        self._reconnect_seconds = reconnect_seconds
        self._max_reconnect_seconds = max_reconnect_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.subscribed = asyncio.Event()

    async def announce(self, key_id: str) -> None:
        """The key stopped being valid (revoked, or rotated: its overlap may end sooner than a
        cached answer would). Never raises: the change is committed already, and a replica that
        does not hear of it stops accepting the key within its cache TTL anyway."""
        dropped = self._verifier.forget(key_id)
        try:
            await self._redis.publish(self._channel, key_id)
        except (RedisError, OSError) as exc:
            log.warning("auth.revocation_not_broadcast", key_id=key_id, error=type(exc).__name__)
            return
        log.info("auth.revocation_broadcast", key_id=key_id, dropped=dropped)

    def start(self) -> None:
        self._task = asyncio.create_task(self.listen(), name="api-key-revocations")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        # Cancelled again until it ends: on Python 3.11 a cancellation that lands as a read's
        # own timeout expires can come out as that timeout, which the loop would survive.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        await asyncio.gather(task, return_exceptions=True)

    async def listen(self) -> None:
        """Runs until stopped: subscribes, forgets every key id it hears of, and after a lost
        connection subscribes again with a growing pause, logging the outage once."""
        pause = self._reconnect_seconds
        failing = heard_before = False
        while not self._stopping:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while not self._stopping:
                    message = await pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        if heard_before:
                            # What was announced while the connection was down is unknown:
                            # start afresh rather than trust answers that may be revoked.
                            self._verifier.clear()
                        heard_before = True
                        self.subscribed.set()
                        if failing:
                            log.info("auth.revocations_resubscribed")
                        failing, pause = False, self._reconnect_seconds
                    elif message["type"] == "message":
                        self._forget(message["data"])
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                if not failing:
                    log.warning("auth.revocations_unavailable", error=type(exc).__name__)
                failing = True
            finally:
                await _close(pubsub)
            if self._stopping:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._max_reconnect_seconds)

    def _forget(self, data: object) -> None:
        if isinstance(data, bytes):
            data = data.decode(errors="replace")
        if isinstance(data, str) and 0 < len(data) <= _MAX_KEY_ID_LENGTH:
            self._verifier.forget(data)


async def _close(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
    except (RedisError, OSError):
        pass  # a connection that is already gone has nothing left to close
