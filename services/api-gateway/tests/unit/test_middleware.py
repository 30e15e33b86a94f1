"""The body guards answer from the headers alone: `receive` is never called."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from api_gateway.middleware import BodySizeLimitMiddleware, JsonContentTypeMiddleware


async def app_never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the guarded app must not run")


async def receive_never_called() -> Message:
    raise AssertionError("the body must not be read")


def http_scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "state": {"request_id": "req-unit"},
    }


async def call(app: Any, scope: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive_never_called, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(body)


async def test_content_length_over_the_limit() -> None:
    middleware = BodySizeLimitMiddleware(app_never_called, max_body_bytes=10)
    scope = http_scope("POST", "/v1/jobs", {"content-length": "11"})

    status, headers, problem = await call(middleware, scope)

    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert problem["request_id"] == "req-unit"
    assert problem["instance"] == "/v1/jobs"


async def test_content_length_not_a_number() -> None:
    middleware = BodySizeLimitMiddleware(app_never_called, max_body_bytes=10)

    status, _, problem = await call(
        middleware, http_scope("POST", "/v1/jobs", {"content-length": "-1"})
    )

    assert status == 400
    assert problem["type"] == "urn:conveyor:problem:malformed-body"


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonx", "multipart/form-data"])
async def test_non_json_content_type(content_type: str) -> None:
    middleware = JsonContentTypeMiddleware(app_never_called, path_prefix="/v1")
    scope = http_scope("POST", "/v1/jobs", {"content-length": "2", "content-type": content_type})

    status, _, problem = await call(middleware, scope)

    assert status == 415
    assert problem["type"] == "urn:conveyor:problem:unsupported-media-type"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/v1/jobs", {"content-length": "2", "content-type": "application/json"}),
        (
            "POST",
            "/v1/jobs",
            {"content-length": "2", "content-type": "application/merge-patch+json"},
        ),
        ("POST", "/v1/jobs/x/cancel", {"content-length": "0"}),
        ("GET", "/v1/jobs", {}),
        ("POST", "/other", {"content-length": "2", "content-type": "text/plain"}),
    ],
)
async def test_passes_what_it_should(method: str, path: str, headers: dict[str, str]) -> None:
    reached: list[bool] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(True)

    await JsonContentTypeMiddleware(inner, path_prefix="/v1")(
        http_scope(method, path, headers), receive_never_called, send_nothing
    )
    assert reached == [True]


async def send_nothing(message: Message) -> None:
    raise AssertionError("nothing should be sent by the middleware")
