"""Calls to job-service and result-service: pooled clients, the internal headers, and the one
mapping from what went wrong upstream to what the client is told.

- Upstream problem+json answers are relayed with their status and body (`UpstreamProblem`).
- Nothing listening, or no connection to be had in time: 503 with `Retry-After`.
- Connected but no answer within the read timeout: 504.
- Anything else (a dropped connection, a non-problem error, a body outside the contract): 502.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import aiohttp
import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from conveyor_common import tracing
from conveyor_common.problems import (
    PROBLEM_CONTENT_TYPE,
    BadGateway,
    GatewayTimeout,
    ServiceUnavailable,
)
from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from conveyor_common.web import REQUEST_ID_HEADER

log = structlog.get_logger("api_gateway.upstream")

ModelT = TypeVar("ModelT", bound=BaseModel)

# Headers a client may send that mean something end to end and are passed on as they are.
PASSED_THROUGH_HEADERS = ("traceparent", "tracestate")


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who a call is made for: set on every upstream request."""

    request_id: str | None
    tenant_id: str | None = None
    passthrough: tuple[tuple[str, str], ...] = ()


class UpstreamUnhealthy(Exception):
    """An upstream's `/healthz` answered, but not 200."""


class UpstreamProblem(Exception):
    """A problem+json answer from upstream, relayed to the client with its status and body."""

    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str]) -> None:
        super().__init__(body.get("title") or f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers)


# Response headers worth relaying with a problem: they tell the client what to do next.
_RELAYED_PROBLEM_HEADERS = ("retry-after", "www-authenticate")


@dataclass(frozen=True)
class UpstreamTimeouts:
    connect: float
    read: float
    pool: float


def make_http_session(*, max_connections: int) -> aiohttp.ClientSession:
    """The pooled connections to one internal service (docs/decisions/0023: aiohttp's client
    costs a third of httpx's CPU per call)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=max_connections,
            # Shorter than uvicorn's 5 s keep-alive, so we drop an idle connection before the
            # server does instead of writing a request into one it is closing.
            keepalive_timeout=4.0,
        ),
        # Internal answers set no cookies; a jar would search every answer for `Set-Cookie`.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Upstream URLs are internal: never a proxy or netrc from the environment.
        trust_env=False,
        auto_decompress=False,
        # The gateway relays upstream bodies as they are; it never asks for compression.
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """An upstream answer, read whole."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True, slots=True)
class Relayed(Generic[ModelT]):
    """An upstream JSON body (already checked against its model) and the status to answer."""

    status: int
    content: bytes
    model: ModelT


class Upstream:
    """One internal service, with the internal token and the caller's context on every call."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        timeouts: UpstreamTimeouts,
        internal_token: SecretStr,
        retry_after_seconds: int,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = session
        address = urlsplit(self.base_url)
        self._host = address.hostname or ""
        self._port = address.port or (443 if address.scheme == "https" else 80)
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            # aiohttp's `connect` covers waiting for a pooled connection and opening one.
            connect=timeouts.pool + timeouts.connect,
            sock_connect=timeouts.connect,
            sock_read=timeouts.read,
        )
        self._token = internal_token.get_secret_value()
        self._retry_after = retry_after_seconds

    async def request(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        sent: dict[str, str] = {INTERNAL_TOKEN_HEADER: self._token, **dict(ctx.passthrough)}
        if ctx.request_id:
            sent[REQUEST_ID_HEADER] = ctx.request_id
        if ctx.tenant_id:
            sent[TENANT_HEADER] = ctx.tenant_id
        if content is not None:
            sent["Content-Type"] = "application/json"
        if headers:
            sent.update(headers)
        if not tracing.enabled():
            return await self._send(method, path, content, params, sent)
        # The client span's context replaces whatever `traceparent` the client sent: that one
        # is the parent of our server span already.
        with tracing.span(
            f"{method} {self.name}",
            kind=tracing.SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": self._host,
                "server.port": self._port,
                "peer.service": self.name,
            },
        ) as span:
            tracing.inject_headers(sent)
            response = await self._send(method, path, content, params, sent)
            if span is not None:
                span.set_attribute("http.response.status_code", response.status_code)
            return response

    async def health(self, timeout: float) -> None:
        """Raises unless the service's `/healthz` answers 200 within `timeout` seconds."""
        async with self.session.get(
            self.base_url + "/healthz", timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                raise UpstreamUnhealthy(f"{self.name} /healthz answered {response.status}")

    async def aclose(self) -> None:
        await self.session.close()

    async def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
    ) -> UpstreamResponse:
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                data=content,
                params=params,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return UpstreamResponse(response.status, response.headers, body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Nothing listening, or no connection (pooled or new) to be had in time.
            log.warning("upstream.unavailable", upstream=self.name, error=type(exc).__name__)
            raise ServiceUnavailable(
                f"The {self.name} is unavailable.", retry_after=self._retry_after
            ) from exc
        except TimeoutError as exc:  # aiohttp's read timeout is one
            log.warning("upstream.timeout", upstream=self.name, error=type(exc).__name__)
            raise GatewayTimeout(f"The {self.name} did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            log.warning("upstream.failed", upstream=self.name, error=type(exc).__name__)
            raise BadGateway(f"The {self.name} failed to answer.") from exc

    def check(self, response: UpstreamResponse, *expected: int) -> UpstreamResponse:
        """Returns the response if its status is one of `expected`; else raises what the client
        should see: the upstream problem itself, or a 502."""
        if response.status_code in expected:
            return response
        problem = _problem_body(response)
        if response.status_code == 401:
            # Our own internal token was refused: a deployment error the client can do nothing
            # about, so it must not look like "your API key is wrong".
            log.error("upstream.internal_token_refused", upstream=self.name)
            raise BadGateway(f"The {self.name} refused the gateway's credentials.")
        if problem is not None:
            relayed = {
                k: v for k, v in response.headers.items() if k.lower() in _RELAYED_PROBLEM_HEADERS
            }
            raise UpstreamProblem(response.status_code, problem, relayed)
        log.error(
            "upstream.unexpected_answer",
            upstream=self.name,
            status=response.status_code,
            content_type=response.headers.get("content-type"),
        )
        raise BadGateway(f"The {self.name} answered {response.status_code} unexpectedly.")

    def relay(
        self, response: UpstreamResponse, model: type[ModelT], *expected: int
    ) -> Relayed[ModelT]:
        """An expected answer, checked against `model`, to pass on as the bytes upstream sent."""
        self.check(response, *expected)
        return Relayed(response.status_code, response.content, self.parse(response, model))

    def parse(self, response: UpstreamResponse, model: type[ModelT]) -> ModelT:
        """The response body as `model`; a body outside the contract is the upstream's fault."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            log.error(
                "upstream.contract_violation",
                upstream=self.name,
                model=model.__name__,
                # Locations and messages only: the values may be tenants' data.
                errors=[(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()][:10],
            )
            raise BadGateway(f"The {self.name} answered outside its contract.") from exc


def _problem_body(response: UpstreamResponse) -> dict[str, Any] | None:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != PROBLEM_CONTENT_TYPE:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return None
    return body
