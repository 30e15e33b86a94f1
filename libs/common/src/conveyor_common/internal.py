"""Service-to-service trust: job-service and result-service accept only callers holding the
internal token (the gateway), and take the tenant from the header the gateway sets."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from conveyor_common.problems import Unauthorized
from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER


def check_internal_token(request: Request, expected: SecretStr) -> None:
    presented = request.headers.get(INTERNAL_TOKEN_HEADER, "")
    if not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("This service accepts calls from the Conveyor gateway only.")


# Dependencies are `async def` though they never await: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hop per dependency per request.
async def internal_caller(request: Request) -> None:
    """Dependency: the app's settings must be on `app.state.settings` with `internal_token`."""
    check_internal_token(request, request.app.state.settings.internal_token)


async def tenant_from_header(request: Request) -> str:
    check_internal_token(request, request.app.state.settings.internal_token)
    tenant = request.headers.get(TENANT_HEADER, "")
    if not tenant:
        raise Unauthorized(f"{TENANT_HEADER} is required on tenant-scoped internal routes.")
    return tenant


InternalCaller = Annotated[None, Depends(internal_caller)]
TenantDep = Annotated[str, Depends(tenant_from_header)]
