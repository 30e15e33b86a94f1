"""Turning a relayed upstream body into this request's response, and the problems every
authenticated route may answer (declared so OpenAPI shows them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import Response

from api_gateway.upstream import Relayed
from conveyor_common.problems import (
    BadGateway,
    ConveyorError,
    Forbidden,
    GatewayTimeout,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)

AUTHENTICATED_ROUTE_PROBLEMS: tuple[type[ConveyorError], ...] = (
    Unauthorized,
    Forbidden,
    RateLimited,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
)


def relay(relayed: Relayed[Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        content=relayed.content,
        status_code=relayed.status,
        media_type="application/json",
        headers=dict(headers or {}),
    )
