"""An httpx transport that keeps each connection in a pool of its own ("lanes").

httpcore's connection pool re-examines every connection it holds whenever a request arrives or
a response is closed, and asks the socket of each idle one whether the server hung up (a `poll`
system call each). With dozens of connections in flight that is dozens of system calls and
list scans per request: on this project's 2-core VMs an httpx client doing 32 requests at once
spent 2.2 ms of CPU per request and carried ~300 requests/s, against 0.4 ms and ~1,850/s when
the same 32 connections each had a pool of one (measured against a no-op uvicorn app; `wrk`
carries ~8,000/s against it). A lane is one `httpx.AsyncHTTPTransport` limited to a single
connection; a request takes an idle lane (the most recently used first, so a quiet client keeps
few connections warm and the rest expire), or opens a new one up to the limit, or waits for one
until the pool timeout. The lane goes back when the response is closed.

Only asyncio is supported: the services and the bench run on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx


class LanedTransport(httpx.AsyncBaseTransport):
    """Up to `max_connections` single-connection transports, each used by one request at a time.

    `keepalive_expiry` and the keyword arguments are those of `httpx.AsyncHTTPTransport`
    (`verify`, `cert`, `trust_env`, `local_address`, ...); `limits` is not accepted, as each
    lane's is fixed at one connection."""

    def __init__(
        self, *, max_connections: int, keepalive_expiry: float | None = 5.0, **transport: Any
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max = max_connections
        self._limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=keepalive_expiry
        )
        # One TLS context for every lane: building one (loading the CA bundle) took longer than
        # a hundred requests, and each lane would otherwise build its own.
        ssl_context = httpx.create_ssl_context(
            verify=transport.pop("verify", True),
            cert=transport.pop("cert", None),
            trust_env=transport.get("trust_env", True),
        )
        self._transport_options = {**transport, "verify": ssl_context}
        self._lanes: list[httpx.AsyncHTTPTransport] = []
        self._idle: asyncio.LifoQueue[httpx.AsyncHTTPTransport] = asyncio.LifoQueue()
        self._closed = False

    @property
    def lanes(self) -> int:
        """How many lanes were opened (each holds at most one connection)."""
        return len(self._lanes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lane = await self._acquire(request)
        try:
            response = await lane.handle_async_request(request)
        except BaseException:
            self._release(lane)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an async transport's answer
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_LaneStream(response.stream, lambda: self._release(lane)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        for lane in self._lanes:
            await lane.aclose()

    async def _acquire(self, request: httpx.Request) -> httpx.AsyncHTTPTransport:
        if self._closed:
            raise RuntimeError("the transport has been closed")
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        if len(self._lanes) < self._max:
            lane = httpx.AsyncHTTPTransport(limits=self._limits, **self._transport_options)
            self._lanes.append(lane)
            return lane
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            # `Queue.get` leaves the item queued when it is cancelled, so a timeout loses no lane.
            async with asyncio.timeout(timeout):
                return await self._idle.get()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no connection became free in time", request=request) from exc

    def _release(self, lane: httpx.AsyncHTTPTransport) -> None:
        if not self._closed:
            self._idle.put_nowait(lane)


class _LaneStream(httpx.AsyncByteStream):
    """A response body that gives its lane back once, when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
