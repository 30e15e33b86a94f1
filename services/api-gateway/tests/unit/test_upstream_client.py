"""The upstream client against a small real HTTP/1.1 server on loopback: connections are
reused, no cookie survives an answer, and each way a call can fail maps to its problem."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from api_gateway.upstream import CallContext, Upstream, UpstreamTimeouts, make_http_session
from conveyor_common.problems import GatewayTimeout, ServiceUnavailable
from conveyor_testing.ports import free_port

CTX = CallContext(request_id="r-1", tenant_id="acme")


class LoopbackServer:
    """Answers each request with its path and a cookie; `/hold` answers once `release` is set.
    Records the Cookie header of every request and counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.cookies: list[str | None] = []
        self.release = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> LoopbackServer:
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
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                path = lines[0].split(" ")[1]
                fields = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
                self.cookies.append(fields.get("cookie"))
                await reader.readexactly(int(fields.get("content-length", "0")))
                if path == "/hold":
                    await self.release.wait()
                body = path.encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    async with LoopbackServer() as running:
        yield running


def upstream(url: str, *, max_connections: int = 4, read: float = 5.0) -> Upstream:
    return Upstream(
        "job-service",
        url,
        make_http_session(max_connections=max_connections),
        timeouts=UpstreamTimeouts(connect=1.0, read=read, pool=0.2),
        internal_token=SecretStr("t"),
        retry_after_seconds=1,
    )


async def test_connections_are_reused_and_cookies_ignored(server: LoopbackServer) -> None:
    client = upstream(server.url)
    try:
        answers = [await client.request("GET", f"/a{i}", CTX) for i in range(5)]
    finally:
        await client.aclose()

    assert [a.content for a in answers] == [f"/a{i}".encode() for i in range(5)]
    assert server.connections == 1
    assert server.cookies == [None] * 5


async def test_no_free_connection_in_time_is_unavailable(server: LoopbackServer) -> None:
    client = upstream(server.url, max_connections=1)
    try:
        held = asyncio.create_task(client.request("GET", "/hold", CTX))
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceUnavailable):
            await client.request("GET", "/next", CTX)
        server.release.set()
        assert (await held).content == b"/hold"
    finally:
        await client.aclose()


async def test_no_answer_in_time_is_a_gateway_timeout(server: LoopbackServer) -> None:
    client = upstream(server.url, read=0.2)
    try:
        with pytest.raises(GatewayTimeout):
            await client.request("GET", "/hold", CTX)
    finally:
        server.release.set()
        await client.aclose()


async def test_nothing_listening_is_unavailable() -> None:
    client = upstream(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ServiceUnavailable) as refused:
            await client.request("GET", "/a", CTX)
    finally:
        await client.aclose()
    assert refused.value.headers == {"Retry-After": "1"}
