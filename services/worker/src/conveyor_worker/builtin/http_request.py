"""`http.request`: one outbound HTTP call, with the SSRF guard, a total deadline and a cap on
the response size."""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict, Field

from conveyor_worker.builtin.netguard import (
    AllowedHost,
    GuardedBackend,
    check_scheme,
)
from conveyor_worker.errors import PermanentError

DEFAULT_MAX_RESPONSE_BYTES = 1_048_576
MAX_REDIRECTS = 5
MAX_URL_LENGTH = 8_192


class InvalidUrl(PermanentError):
    pass


class TooManyRedirects(PermanentError):
    pass


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    allowed_hosts: frozenset[AllowedHost] = field(default_factory=frozenset)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_redirects: int = MAX_REDIRECTS


class HttpRequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description="An http(s) URL.")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="Request body, sent as UTF-8.")
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Deadline for the whole call, redirects included."
    )


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with every connection made through `GuardedBackend`."""

    def __init__(self, allowed_hosts: frozenset[AllowedHost]) -> None:
        super().__init__(trust_env=False)
        # httpx has no public way to pass a network backend, so the pool it built (still
        # without connections) is replaced by an equal one around ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=4,
            network_backend=GuardedBackend(allowed_hosts),
        )


def _read_capped(response: httpx.Response, limit: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        if time.monotonic() > deadline:
            raise TimeoutError("the response did not finish within timeout_seconds")
        if size + len(chunk) > limit:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _decode(body: bytes, charset: str | None) -> str:
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    return body.decode(codec, errors="replace")


def perform_request(args: HttpRequestInput, policy: HttpPolicy) -> dict[str, Any]:
    deadline = time.monotonic() + args.timeout_seconds
    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL as exc:
        raise InvalidUrl(str(exc)) from exc
    check_scheme(url.scheme)
    headers = {"Accept-Encoding": "identity", **args.headers}
    # Raw bytes are capped as read, so compression is declined: a small compressed body could
    # otherwise expand far past the cap before we see it.
    content = args.body.encode() if args.body is not None else None
    with httpx.Client(
        transport=GuardedTransport(policy.allowed_hosts), follow_redirects=False, trust_env=False
    ) as client:
        request = client.build_request(args.method, url, headers=headers, content=content)
        for hop in range(policy.max_redirects + 1):
            check_scheme(request.url.scheme)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the request did not finish within timeout_seconds")
            request.extensions["timeout"] = httpx.Timeout(remaining).as_dict()
            response = client.send(request, stream=True)
            try:
                if response.next_request is not None:
                    if hop == policy.max_redirects:
                        raise TooManyRedirects(f"more than {policy.max_redirects} redirects")
                    request = response.next_request
                    continue
                body, truncated = _read_capped(response, policy.max_response_bytes, deadline)
                return {
                    "status": response.status_code,
                    "url": str(response.url),
                    "headers": dict(response.headers),
                    "body": _decode(body, response.charset_encoding),
                    "truncated": truncated,
                }
            finally:
                response.close()
    raise AssertionError("unreachable: the loop returns or raises")
