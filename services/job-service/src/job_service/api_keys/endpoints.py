"""`POST /internal/v1/auth/verify`: the gateway asks who a presented API key belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from conveyor_common.internal import InternalCaller
from conveyor_common.problems import InvalidRequest, Unauthorized, problem_responses
from job_service.api_keys.schemas import VerifiedKey, VerifyRequest
from job_service.api_keys.service import ApiKeyService
from job_service.db import SessionDep

router = APIRouter(prefix="/internal/v1/auth", tags=["auth"])


@router.post("/verify", responses=problem_responses(Unauthorized, InvalidRequest))
async def verify_key(
    body: VerifyRequest, _caller: InternalCaller, session: SessionDep
) -> VerifiedKey:
    return await ApiKeyService(session).verify(body.key)
