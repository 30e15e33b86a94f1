"""A team's own tasks, loaded by the integration tests through `CONVEYOR_TASK_MODULES`."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from conveyor_worker import JobContext, PermanentError, TaskRegistry

registry = TaskRegistry()


class GreetInput(BaseModel):
    name: str


@registry.task("team.greet", queue="team", timeout_seconds=30, max_attempts=5)
def greet(args: GreetInput, ctx: JobContext) -> dict[str, Any]:
    """Greets someone, and says which attempt of which job did it."""
    return {
        "greeting": f"hello {args.name}",
        "job_id": str(ctx.job_id),
        "tenant_id": ctx.tenant_id,
        "attempt": ctx.attempt,
        "idempotency_key": ctx.idempotency_key,
    }


class AddInput(BaseModel):
    a: int
    b: int


@registry.task("team.add_async")
async def add_async(args: AddInput) -> int:
    """Adds two numbers, asynchronously."""
    await asyncio.sleep(0)
    return args.a + args.b


@registry.task("team.not_json")
def not_json() -> float:
    """Returns NaN, which JSON cannot carry."""
    return float("nan")


@registry.task("team.refuse")
def refuse() -> None:
    """Fails with a permanent error."""
    raise PermanentError("this input can never work")
