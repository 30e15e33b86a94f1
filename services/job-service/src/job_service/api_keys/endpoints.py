"""`/internal/v1/auth/verify` (the gateway asks who a presented key belongs to) and
`/internal/v1/api-keys` (a tenant's keys, managed through the gateway's `/v1/api-keys`).

Key management is scoped by the tenant header like every tenant route; which scopes the caller
may grant is the gateway's check, since only it knows the caller's credential."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

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
from conveyor_common.internal import InternalCaller, TenantDep
from conveyor_common.problems import (
    InvalidRequest,
    MalformedBody,
    ServiceUnavailable,
    Unauthorized,
    problem_responses,
)
from job_service.api_keys.schemas import VerifiedKey, VerifyRequest
from job_service.api_keys.service import ApiKeyService
from job_service.db import SessionDep
from job_service.deps import SettingsDep

router = APIRouter(prefix="/internal/v1")

_PATH = "/api-keys"
_ONE_ERRORS = problem_responses(Unauthorized, ApiKeyNotFound, ServiceUnavailable)


async def get_api_key_service(session: SessionDep) -> ApiKeyService:
    return ApiKeyService(session)


ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]


@router.post(
    "/auth/verify", tags=["auth"], responses=problem_responses(Unauthorized, InvalidRequest)
)
async def verify_key(
    body: VerifyRequest, _caller: InternalCaller, service: ApiKeyServiceDep
) -> VerifiedKey:
    return await service.verify(body.key)


@router.post(
    _PATH,
    tags=["api-keys"],
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(Unauthorized, MalformedBody, InvalidRequest, ServiceUnavailable),
)
async def create_api_key(
    body: ApiKeyCreate, tenant: TenantDep, service: ApiKeyServiceDep, response: Response
) -> ApiKeyCreated:
    created = await service.create(tenant, body.name, body.scopes, expires_at=body.expires_at)
    response.headers["Location"] = f"/internal/v1/api-keys/{created.id}"
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get(
    _PATH,
    tags=["api-keys"],
    responses=problem_responses(Unauthorized, InvalidRequest, ServiceUnavailable),
)
async def list_api_keys(
    tenant: TenantDep,
    service: ApiKeyServiceDep,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE_SIZE)] = limits.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> ApiKeyList:
    return await service.list(tenant, limit=limit, cursor=cursor)


@router.get(_PATH + "/{key_id}", tags=["api-keys"], responses=_ONE_ERRORS)
async def get_api_key(
    key_id: uuid.UUID, tenant: TenantDep, service: ApiKeyServiceDep
) -> ApiKeyRead:
    return await service.get(key_id, tenant_id=tenant)


@router.post(_PATH + "/{key_id}/revoke", tags=["api-keys"], responses=_ONE_ERRORS)
async def revoke_api_key(
    key_id: uuid.UUID, tenant: TenantDep, service: ApiKeyServiceDep
) -> ApiKeyRead:
    return await service.revoke(key_id, tenant_id=tenant)


@router.post(
    _PATH + "/{key_id}/rotate",
    tags=["api-keys"],
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(
        Unauthorized, ApiKeyNotFound, ApiKeyNotRotatable, InvalidRequest, ServiceUnavailable
    ),
)
async def rotate_api_key(
    key_id: uuid.UUID,
    tenant: TenantDep,
    service: ApiKeyServiceDep,
    settings: SettingsDep,
    response: Response,
    body: ApiKeyRotate | None = None,
) -> ApiKeyRotation:
    overlap = body.overlap_seconds if body is not None else None
    rotation = await service.rotate(
        key_id,
        tenant_id=tenant,
        overlap_seconds=settings.api_key_rotation_overlap_seconds if overlap is None else overlap,
    )
    response.headers["Location"] = f"/internal/v1/api-keys/{rotation.created.id}"
    response.headers["Cache-Control"] = "no-store"
    return rotation
