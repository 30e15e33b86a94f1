"""What each `/v1/dead-letters` route asks of job-service.

job-service scopes every call by the tenant header, so another tenant's dead letter answers
`404 dead-letter-not-found` exactly like one that does not exist. Answers are checked against the
public models and relayed as the bytes upstream sent."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from pydantic import BaseModel

from api_gateway.upstream import CallContext, Relayed, Upstream
from conveyor_common.dead_letters import (
    DeadLetterIds,
    DeadLetterList,
    DeadLetterPurge,
    DeadLetterPurgeResult,
    DeadLetterRead,
    DeadLetterReplayResult,
)
from conveyor_common.jobs import JobRead

_PATH = "/internal/v1/dead-letters"


class DeadLettersGateway:
    def __init__(self, job_service: Upstream) -> None:
        self.job_service = job_service

    async def list(self, params: Mapping[str, str], ctx: CallContext) -> Relayed[DeadLetterList]:
        response = await self.job_service.request("GET", _PATH, ctx, params=params)
        return self.job_service.relay(response, DeadLetterList, 200)

    async def get(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[DeadLetterRead]:
        response = await self.job_service.request("GET", f"{_PATH}/{job_id}", ctx)
        return self.job_service.relay(response, DeadLetterRead, 200)

    async def replay_one(self, job_id: uuid.UUID, ctx: CallContext) -> Relayed[JobRead]:
        response = await self.job_service.request("POST", f"{_PATH}/{job_id}/replay", ctx)
        return self.job_service.relay(response, JobRead, 202)

    async def replay(
        self, body: DeadLetterIds, ctx: CallContext
    ) -> Relayed[DeadLetterReplayResult]:
        response = await self.job_service.request(
            "POST", f"{_PATH}/replay", ctx, content=_json(body)
        )
        return self.job_service.relay(response, DeadLetterReplayResult, 202)

    async def purge_one(self, job_id: uuid.UUID, ctx: CallContext) -> None:
        response = await self.job_service.request("DELETE", f"{_PATH}/{job_id}", ctx)
        self.job_service.check(response, 204)

    async def purge(
        self, body: DeadLetterPurge, ctx: CallContext
    ) -> Relayed[DeadLetterPurgeResult]:
        response = await self.job_service.request(
            "POST", f"{_PATH}/purge", ctx, content=_json(body)
        )
        return self.job_service.relay(response, DeadLetterPurgeResult, 200)


def _json(model: BaseModel) -> bytes:
    # What the client sent, as validated: `{"filter": {}}` (purge every dead letter) must stay
    # distinct from a body that gave no filter at all.
    return model.model_dump_json(exclude_unset=True).encode()
