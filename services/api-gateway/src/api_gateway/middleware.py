"""Pure-ASGI middleware: guards that answer before the body is read (a body-size limit and a
JSON-only content type), and the redaction every problem body passes on its way out. They sit
inside the request-id middleware, so their problems carry the id."""

from __future__ import annotations

import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_common.logging import redact, redact_text
from conveyor_common.problems import (
    PROBLEM_CONTENT_TYPE,
    ConveyorError,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from conveyor_common.web import problem_response

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _answer(error: ConveyorError, scope: Scope, receive: Receive, send: Send) -> None:
    request_id = scope.get("state", {}).get("request_id")
    problem = error.to_problem(instance=scope.get("path"), request_id=request_id)
    # Tell the client we will not read the rest: keeping the connection would mean draining
    # a body we just refused.
    headers = {**error.headers, "Connection": "close"}
    await problem_response(problem, headers)(scope, receive, send)


class BodySizeLimitMiddleware:
    """413 before reading a byte when `Content-Length` is over the limit; for a body without a
    length (chunked), reads only up to the limit and answers 413 as soon as it is passed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(
                    MalformedBody("Content-Length is not a number."), scope, receive, send
                )
                return
            if int(declared) > self.max_body_bytes:
                await _answer(self._too_large(), scope, receive, send)
                return
            # The server frames the body by Content-Length, so it cannot be longer.
            await self.app(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        await self._buffered(scope, receive, send)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away while sending
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _answer(self._too_large(), scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is over the limit of {self.max_body_bytes} bytes.",
            extra={"limit": self.max_body_bytes},
        )


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class JsonContentTypeMiddleware:
    """415 for a request under `path_prefix` that carries a body which does not say it is JSON,
    before the body is read."""

    def __init__(self, app: ASGIApp, path_prefix: str) -> None:
        self.app = app
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and str(scope.get("path", "")).startswith(self.path_prefix)
        ):
            headers = Headers(scope=scope)
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if has_body and not _is_json(headers.get("content-type", "")):
                error = UnsupportedMediaType("Send the body as `Content-Type: application/json`.")
                await _answer(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


def redact_problem(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return redact_text(body.decode("utf-8", errors="replace")).encode()
    return json.dumps(
        redact(document), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()


class ProblemRedactionMiddleware:
    """Every `application/problem+json` body leaving the gateway goes through
    `conveyor_common.logging.redact`: values under secret-named keys and secret-shaped strings
    (API keys, bearer tokens, JWTs, DSN passwords) are replaced, whoever wrote the problem — a
    validation error naming a client-chosen field, an upstream service, or the gateway. Other
    responses pass untouched and unbuffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def send_redacted(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if content_type.split(";", 1)[0].strip().lower() == PROBLEM_CONTENT_TYPE:
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = redact_problem(b"".join(chunks))
                headers = MutableHeaders(raw=list(held.get("headers", [])))
                headers["content-length"] = str(len(body))
                await send({**held, "headers": headers.raw})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, send_redacted)
