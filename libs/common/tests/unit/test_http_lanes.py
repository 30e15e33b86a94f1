"""LanedTransport against a small real HTTP/1.1 server on loopback that counts its connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor_common.http_lanes import LanedTransport


class CountingServer:
    """Answers every request with its path; `/hold` answers only once `release` is set."""

    def __init__(self) -> None:
        self.connections = 0
        self.release = asyncio.Event()
        self.holding = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split(" ")[1]
                length = next(
                    (int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")),
                    0,
                )  # fmt: skip
                await reader.readexactly(length)
                if path == "/hold":
                    self.holding += 1
                    await self.release.wait()
                body = path.encode() * (1000 if path == "/big" else 1)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def laned_client(url: str, transport: LanedTransport) -> httpx.AsyncClient:
    """A client on `transport` that gives up waiting for a free lane after 0.2 s."""
    return httpx.AsyncClient(
        base_url=url, transport=transport, timeout=httpx.Timeout(5.0, pool=0.2)
    )


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    async with CountingServer() as running:
        yield running


async def test_concurrent_requests_open_one_connection_per_lane_up_to_the_limit(
    server: CountingServer,
) -> None:
    transport = LanedTransport(max_connections=4)
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        answers = await asyncio.gather(*(client.get(f"/n{i}") for i in range(40)))
        assert [a.text for a in answers] == [f"/n{i}" for i in range(40)]
        assert transport.lanes <= 4
        assert server.connections == transport.lanes


async def test_sequential_requests_reuse_one_connection(server: CountingServer) -> None:
    transport = LanedTransport(max_connections=8)
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        for i in range(10):
            assert (await client.post("/one", content=b"x" * i)).text == "/one"
    assert transport.lanes == 1
    assert server.connections == 1


async def test_a_request_waits_for_a_free_lane_then_times_out(server: CountingServer) -> None:
    transport = LanedTransport(max_connections=2)
    async with laned_client(server.url, transport) as client:
        held = [asyncio.create_task(client.get("/hold")) for _ in range(2)]
        while server.holding < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/third")
        # Once the held answers come back their lanes serve the next request, on the same
        # connections.
        waiting = asyncio.create_task(client.get("/fourth"))
        server.release.set()
        assert [(await t).text for t in held] == ["/hold", "/hold"]
        assert (await waiting).text == "/fourth"
    assert server.connections == 2


async def test_a_streamed_answer_keeps_its_lane_until_closed(server: CountingServer) -> None:
    transport = LanedTransport(max_connections=1)
    async with laned_client(server.url, transport) as client:
        async with client.stream("GET", "/big") as streamed:
            with pytest.raises(httpx.PoolTimeout):
                await client.get("/meanwhile")
            assert len(await streamed.aread()) == 4000
        assert (await client.get("/after")).text == "/after"
    assert server.connections == 1


async def test_a_failed_request_gives_its_lane_back() -> None:
    transport = LanedTransport(max_connections=1)
    # Nothing listens on port 9 (discard) of loopback here: every attempt is refused.
    async with laned_client("http://127.0.0.1:9", transport) as client:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await client.get("/")
    assert transport.lanes == 1


def test_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        LanedTransport(max_connections=0)


async def test_every_lane_shares_one_tls_context(server: CountingServer) -> None:
    transport = LanedTransport(max_connections=3)
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        server_release = asyncio.create_task(_release_when_holding(server, 3))
        await asyncio.gather(*(client.get("/hold") for _ in range(3)), server_release)
        contexts = {id(lane._pool._ssl_context) for lane in transport._lanes}
    assert transport.lanes == 3
    assert len(contexts) == 1


async def _release_when_holding(server: CountingServer, count: int) -> None:
    while server.holding < count:
        await asyncio.sleep(0.01)
    server.release.set()
