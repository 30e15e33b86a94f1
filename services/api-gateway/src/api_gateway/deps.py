"""Request dependencies: what the lifespan put on `app.state`. `async def` though they never
await: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api_gateway.api_keys.service import ApiKeysGateway
from api_gateway.dead_letters.service import DeadLettersGateway
from api_gateway.jobs.service import JobsGateway


async def get_jobs_gateway(request: Request) -> JobsGateway:
    jobs: JobsGateway = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobsGateway, Depends(get_jobs_gateway)]


async def get_dead_letters_gateway(request: Request) -> DeadLettersGateway:
    # A thin view over the job-service client the lifespan made: nothing to open or close.
    return DeadLettersGateway(request.app.state.job_service)


DeadLettersDep = Annotated[DeadLettersGateway, Depends(get_dead_letters_gateway)]


async def get_api_keys_gateway(request: Request) -> ApiKeysGateway:
    return ApiKeysGateway(request.app.state.job_service, request.app.state.key_revocations)


ApiKeysDep = Annotated[ApiKeysGateway, Depends(get_api_keys_gateway)]
