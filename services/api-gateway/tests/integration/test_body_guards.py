"""Body size and content type are enforced before the body is read or authenticated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor_common import limits

pytestmark = pytest.mark.integration

PROBLEM = "urn:conveyor:problem:"
CHUNK = 64 * 1024


@pytest.fixture
def writer(keys: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.full}"}


class CountingBody:
    """A request body streamed in chunks, counting how many the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"task": "echo", "args": {"pad": "'
        for _ in range(self.chunks):
            self.sent += 1
            yield b"x" * CHUNK
        yield b'"}}'


async def test_declared_length_over_the_limit_is_refused_unread(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    body = CountingBody(chunks=32)
    response = await gateway.post(
        "/v1/jobs",
        content=body,
        headers={
            **writer,
            "Content-Type": "application/json",
            "Content-Length": str(limits.MAX_BODY_BYTES + 1),
            "X-Request-ID": "req-413",
        },
    )

    assert response.status_code == 413
    problem = response.json()
    assert problem["type"] == PROBLEM + "payload-too-large"
    assert problem["extra"] == {"limit": limits.MAX_BODY_BYTES}
    assert problem["request_id"] == "req-413"
    assert body.sent == 0
    assert double.calls == []  # refused before authentication, too


async def test_chunked_body_stops_being_read_past_the_limit(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    body = CountingBody(chunks=64)  # 4 MiB if read to the end

    response = await gateway.post(
        "/v1/jobs", content=body, headers={**writer, "Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["type"] == PROBLEM + "payload-too-large"
    assert body.sent <= limits.MAX_BODY_BYTES // CHUNK + 1
    assert double.calls == []


async def test_chunked_body_under_the_limit_is_accepted(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any
) -> None:
    body = CountingBody(chunks=2)

    response = await gateway.post(
        "/v1/jobs", content=body, headers={**writer, "Content-Type": "application/json"}
    )

    assert response.status_code == 202, response.text
    (job,) = double.submitted_jobs()
    assert len(job["args"]["pad"]) == 2 * CHUNK


async def test_body_just_under_the_limit_passes_the_guard(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    # A body at the limit reaches validation (and fails there on the args size limit, which
    # is smaller): the size guard itself let it through.
    pad = "x" * (limits.MAX_BODY_BYTES - 100)
    response = await gateway.post("/v1/jobs", json={"task": "echo", "args": {"p": pad}},
                                  headers=writer)  # fmt: skip

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.args"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_non_json_body_is_unsupported(
    gateway: httpx.AsyncClient, writer: dict[str, str], double: Any, content_type: str | None
) -> None:
    headers = dict(writer)
    if content_type:
        headers["Content-Type"] = content_type
    response = await gateway.post("/v1/jobs", content=b'{"task": "echo"}', headers=headers)

    assert response.status_code == 415
    assert response.json()["type"] == PROBLEM + "unsupported-media-type"
    assert double.calls == []


async def test_json_with_charset_is_fine(
    gateway: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    response = await gateway.post(
        "/v1/jobs",
        content=b'{"task": "echo"}',
        headers={**writer, "Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 202
