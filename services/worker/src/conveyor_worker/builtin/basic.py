"""`echo`, `sleep` and `fail`: tasks for smoke tests, demos and exercising the failure paths."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conveyor_common import limits
from conveyor_worker.errors import PermanentError

MAX_SLEEP_SECONDS = 300.0


class EchoInput(BaseModel):
    """Any JSON object."""

    model_config = ConfigDict(extra="allow")


def echo(args: EchoInput) -> dict[str, Any]:
    """Returns its arguments unchanged."""
    return args.model_dump(mode="json")


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=MAX_SLEEP_SECONDS, description="How long to sleep.")


def sleep(args: SleepInput) -> dict[str, float]:
    """Sleeps for `seconds` (at most 300) and returns how long it actually slept."""
    start = time.monotonic()
    time.sleep(args.seconds)
    return {"slept_seconds": round(time.monotonic() - start, 3)}


class FailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_type: str = Field(
        default="RuntimeError",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=limits.MAX_NAME_LENGTH,
        description="Class name of the raised exception, as the failed event reports it.",
    )
    message: str = Field(default="failed on purpose", max_length=limits.MAX_ERROR_MESSAGE_LENGTH)
    permanent: bool = Field(default=False, description="Raise a permanent (never retried) error.")


def fail(args: FailInput) -> None:
    """Raises an exception of class `error_type` with `message`; permanent errors are never
    retried."""
    base: type[Exception] = PermanentError if args.permanent else Exception
    # A class made on the fly so the reported type is exactly the one asked for.
    raise type(args.error_type, (base,), {"__module__": __name__})(args.message)
