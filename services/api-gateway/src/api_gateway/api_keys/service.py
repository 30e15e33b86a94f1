"""What each `/v1/api-keys` route asks of job-service, and telling every replica when a key
stops being valid.

job-service scopes every call by the tenant header, so another tenant's key answers
`404 api-key-not-found` exactly like one that does not exist. Answers are checked against the
public models and relayed as the bytes upstream sent."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from api_gateway.auth.revocations import KeyRevocations
from api_gateway.upstream import CallContext, Relayed, Upstream
from conveyor_common.api_keys import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    ApiKeyRotate,
    ApiKeyRotation,
)

_PATH = "/internal/v1/api-keys"


class ApiKeysGateway:
    def __init__(self, job_service: Upstream, revocations: KeyRevocations) -> None:
        self.job_service = job_service
        self.revocations = revocations

    async def create(self, body: ApiKeyCreate, ctx: CallContext) -> Relayed[ApiKeyCreated]:
        content = body.model_dump_json(exclude_unset=True).encode()
        response = await self.job_service.request("POST", _PATH, ctx, content=content)
        return self.job_service.relay(response, ApiKeyCreated, 201)

    async def list(self, params: Mapping[str, str], ctx: CallContext) -> Relayed[ApiKeyList]:
        response = await self.job_service.request("GET", _PATH, ctx, params=params)
        return self.job_service.relay(response, ApiKeyList, 200)

    async def get(self, key_id: uuid.UUID, ctx: CallContext) -> Relayed[ApiKeyRead]:
        response = await self.job_service.request("GET", f"{_PATH}/{key_id}", ctx)
        return self.job_service.relay(response, ApiKeyRead, 200)

    async def revoke(self, key_id: uuid.UUID, ctx: CallContext) -> Relayed[ApiKeyRead]:
        response = await self.job_service.request("POST", f"{_PATH}/{key_id}/revoke", ctx)
        relayed = self.job_service.relay(response, ApiKeyRead, 200)
        await self.revocations.announce(str(key_id))
        return relayed

    async def rotate(
        self, key_id: uuid.UUID, body: ApiKeyRotate | None, ctx: CallContext
    ) -> Relayed[ApiKeyRotation]:
        content = body.model_dump_json(exclude_none=True).encode() if body is not None else None
        response = await self.job_service.request(
            "POST", f"{_PATH}/{key_id}/rotate", ctx, content=content
        )
        relayed = self.job_service.relay(response, ApiKeyRotation, 201)
        # Every rotation, not only one with no overlap: an answer cached just before it could
        # outlive a short overlap; answers cached from now on stop at the new expiry by
        # themselves.
        await self.revocations.announce(str(key_id))
        return relayed
