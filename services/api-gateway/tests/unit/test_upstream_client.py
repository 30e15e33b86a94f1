"""The upstream client keeps no cookies: internal answers are never parsed for `Set-Cookie`,
and nothing one answer set is sent with the next request."""

from __future__ import annotations

import httpx

from api_gateway.upstream import make_http_client


async def test_cookies_from_upstream_are_ignored() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json={})

    client = make_http_client(
        "http://job-service.internal",
        connect_timeout=1, read_timeout=1, write_timeout=1, pool_timeout=1,
        max_connections=2,
    )  # fmt: skip
    client._transport = httpx.MockTransport(answer)
    async with client:
        await client.get("/a")
        await client.get("/b")

    assert len(client.cookies) == 0
    assert seen == [None, None]
