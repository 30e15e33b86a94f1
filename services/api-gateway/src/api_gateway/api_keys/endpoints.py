"""`/v1/api-keys`: a tenant's API keys, managed by a caller holding the `admin` scope. Thin:
authenticate, check what the caller may grant, delegate.

A caller can never hand out more than it holds: a new key's scopes, and a rotated key's (whose
replacement's secret the caller receives), must be scopes of the calling credential, else `403`
naming `scopes`. Revocation is `POST /{key_id}/revoke` (not `DELETE`): the key stays listed, as
`revoked`, for the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api_gateway.auth import Admin, Principal, call_context
from api_gateway.deps import ApiKeysDep
from api_gateway.responses import AUTHENTICATED_ROUTE_PROBLEMS, relay
from conveyor_common import limits
from conveyor_common.api_keys import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyNotFound,
    ApiKeyNotRotatable,
    ApiKeyRead,
    ApiKeyRotate,
    ApiKeyRotation,
)
from conveyor_common.problems import (
    FieldError,
    Forbidden,
    InvalidRequest,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    problem_responses,
)

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

_BODY_PROBLEMS = (MalformedBody, InvalidRequest, PayloadTooLarge, UnsupportedMediaType)
_ONE_PROBLEMS = (*AUTHENTICATED_ROUTE_PROBLEMS, ApiKeyNotFound, InvalidRequest)
# The secret must not linger in any cache between here and the client.
_SECRET_HEADERS = {"Cache-Control": "no-store"}


def check_grantable(principal: Principal, scopes: Iterable[str]) -> None:
    missing = sorted(str(scope) for scope in set(scopes) if scope not in principal.scopes)
    if missing:
        raise Forbidden(
            f"A key can carry only scopes the calling credential holds; it lacks "
            f"{', '.join(missing)}.",
            errors=[
                FieldError(
                    field="body.scopes", reason=f"not held by the caller: {', '.join(missing)}"
                )
            ],
            extra={"scopes": missing},
        )


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS, *_BODY_PROBLEMS),
    summary="Create an API key (admin); its secret is in this answer only",
)
async def create_api_key(
    body: ApiKeyCreate, principal: Admin, api_keys: ApiKeysDep, request: Request
) -> Response:
    check_grantable(principal, body.scopes)
    relayed = await api_keys.create(body, call_context(request, principal.tenant_id))
    return relay(relayed, {"Location": f"/v1/api-keys/{relayed.model.id}", **_SECRET_HEADERS})


@router.get(
    "",
    response_model=ApiKeyList,
    responses=problem_responses(*AUTHENTICATED_ROUTE_PROBLEMS, InvalidRequest),
    summary="List the tenant's API keys, newest first, in keyset pages (admin)",
    description="Revoked and expired keys are listed too, with their `status`. Never a secret.",
)
async def list_api_keys(
    principal: Admin,
    api_keys: ApiKeysDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = limits.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Response:
    params = {"limit": str(limit)} | ({"cursor": cursor} if cursor is not None else {})
    return relay(await api_keys.list(params, call_context(request, principal.tenant_id)))


@router.get(
    "/{key_id}",
    response_model=ApiKeyRead,
    responses=problem_responses(*_ONE_PROBLEMS),
    summary="Read an API key (admin)",
)
async def get_api_key(
    key_id: uuid.UUID, principal: Admin, api_keys: ApiKeysDep, request: Request
) -> Response:
    return relay(await api_keys.get(key_id, call_context(request, principal.tenant_id)))


@router.post(
    "/{key_id}/revoke",
    response_model=ApiKeyRead,
    responses=problem_responses(*_ONE_PROBLEMS),
    summary="Revoke an API key at once (admin)",
    description=(
        "The key stops working on every gateway replica at once. Revoking a revoked key "
        "answers the same again."
    ),
)
async def revoke_api_key(
    key_id: uuid.UUID, principal: Admin, api_keys: ApiKeysDep, request: Request
) -> Response:
    return relay(await api_keys.revoke(key_id, call_context(request, principal.tenant_id)))


@router.post(
    "/{key_id}/rotate",
    status_code=201,
    response_model=ApiKeyRotation,
    responses=problem_responses(*_ONE_PROBLEMS, ApiKeyNotRotatable, *_BODY_PROBLEMS),
    summary="Rotate an API key (admin): a new key, the old one valid for an overlap",
    description=(
        "Creates a key with the same name, scopes and expiry (its secret is in this answer "
        "only) and ends the old key after `overlap_seconds` (default: the installation's, "
        "24 h unless changed; `0` ends it at once). A key is rotated once: rotate its "
        "replacement next time. `409 api-key-not-rotatable` for a revoked, expired or already "
        "rotated key."
    ),
)
async def rotate_api_key(
    key_id: uuid.UUID,
    principal: Admin,
    api_keys: ApiKeysDep,
    request: Request,
    body: ApiKeyRotate | None = None,
) -> Response:
    ctx = call_context(request, principal.tenant_id)
    current = await api_keys.get(key_id, ctx)
    check_grantable(principal, current.model.scopes)
    relayed = await api_keys.rotate(key_id, body, ctx)
    location = f"/v1/api-keys/{relayed.model.created.id}"
    return relay(relayed, {"Location": location, **_SECRET_HEADERS})
