"""The dead-letter contract: jobs that ended FAILED (attempts spent, or a permanent error), with
their last error and the history of every attempt; replayed as a new cycle of attempts, or
purged (the job row stays as history)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from conveyor_common import limits
from conveyor_common.jobs import JobEventRead, JobRead


class DeadLetterRead(JobRead):
    """A dead letter is a job (FAILED, `error` set) with what it takes to decide about it."""

    traceback: str | None = Field(
        default=None,
        description=f"The last attempt's traceback, cut to {limits.MAX_TRACEBACK_LENGTH} chars.",
    )
    failed_at: datetime
    history: list[JobEventRead] = Field(
        description="Every attempt's events, of every cycle, oldest first."
    )


class DeadLetterList(BaseModel):
    items: list[DeadLetterRead]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class DeadLetterFilter(BaseModel):
    """The listing's filters; every given one must match."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(default=None, max_length=limits.MAX_NAME_LENGTH)
    queue: str | None = Field(default=None, max_length=limits.MAX_NAME_LENGTH)
    error_type: str | None = Field(default=None, max_length=limits.MAX_NAME_LENGTH)
    failed_after: AwareDatetime | None = None
    failed_before: AwareDatetime | None = None


class DeadLetterIds(BaseModel):
    """Body of a bulk replay."""

    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(min_length=1, max_length=limits.MAX_BULK_IDS)


class DeadLetterPurge(BaseModel):
    """Body of a bulk purge: `ids`, or `filter` (`{}` purges every dead letter)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=limits.MAX_BULK_IDS)
    filter: DeadLetterFilter | None = None

    @model_validator(mode="after")
    def _ids_or_filter(self) -> Self:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of `ids` and `filter`")
        return self


class DeadLetterReplayResult(BaseModel):
    replayed: list[uuid.UUID] = Field(description="Jobs that started a new cycle (PENDING).")
    not_found: list[uuid.UUID] = Field(description="Ids that are not dead letters: left alone.")


class DeadLetterPurgeResult(BaseModel):
    purged: int
