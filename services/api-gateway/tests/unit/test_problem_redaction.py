"""Problem bodies are scrubbed on the way out; every other answer passes through untouched."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from api_gateway.middleware import ProblemRedactionMiddleware
from conveyor_common.logging import REDACTED

KEY = "cvk_abc123_" + "s" * 40


def responder(content_type: str, *chunks: bytes) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        length = sum(len(c) for c in chunks)
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(length).encode()),
                    (b"x-request-id", b"r1"),
                ],
            }
        )
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


async def run(app: Any) -> tuple[dict[str, str], bytes, int]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await ProblemRedactionMiddleware(app)({"type": "http", "path": "/v1/jobs"}, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return headers, body, len(sent)


async def test_problem_bodies_are_redacted_even_when_streamed_in_pieces() -> None:
    problem = json.dumps(
        {
            "type": "urn:conveyor:problem:validation-error",
            "detail": f"bad field body.{KEY}",
            "errors": [{"field": f"body.{KEY}", "reason": "Extra inputs are not permitted"}],
            "extra": {"password": "hunter2", "dsn": "redis://:pw@h/0", "limit": 3},
        }
    ).encode()
    app = responder("application/problem+json", problem[:40], problem[40:])

    headers, body, _ = await run(app)

    document = json.loads(body)
    assert KEY not in body.decode()
    assert document["errors"][0]["field"] == f"body.{REDACTED}"
    assert document["extra"] == {"password": REDACTED, "dsn": REDACTED, "limit": 3}
    assert headers["content-length"] == str(len(body))
    assert headers["x-request-id"] == "r1"


async def test_other_answers_pass_untouched_and_unbuffered() -> None:
    chunks = (b'{"args": {"password": ', b'"the tenant\'s own"}}')
    headers, body, messages = await run(responder("application/json", *chunks))

    assert body == b"".join(chunks)
    assert messages == 3  # start and both chunks, as sent
    assert headers["content-length"] == str(len(body))


async def test_a_problem_that_is_not_json_is_scrubbed_as_text() -> None:
    headers, body, _ = await run(responder("application/problem+json", f"oops {KEY}".encode()))
    assert body == f"oops {REDACTED}".encode()
    assert headers["content-length"] == str(len(body))
