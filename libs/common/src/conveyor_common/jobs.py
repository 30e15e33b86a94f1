"""The public job contract: what a client sends and what it reads back."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from conveyor_common import limits
from conveyor_common.statuses import JobStatus

TaskName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.MAX_NAME_LENGTH,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$",
        description="A task name from the catalog (`GET /v1/tasks`).",
    ),
]
QueueName = Annotated[
    str, Field(min_length=1, max_length=limits.MAX_NAME_LENGTH, pattern=r"^[A-Za-z0-9_.:-]+$")
]
TenantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Tag = Annotated[
    str, Field(min_length=1, max_length=limits.MAX_TAG_LENGTH, pattern=limits.NO_NUL_PATTERN)
]

# Built once: `json.dumps` with options builds an encoder per call, which shows at 1,000 jobs
# per batch (each job's args are measured as JSON).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def json_depth(value: Any, _depth: int = 1) -> int:
    """Nesting depth of a JSON value; scalars are depth 0, `{}` and `[]` are depth 1."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in item)
    return deepest


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 in any string, object key included."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JobCreate(BaseModel):
    """A job as a client submits it. Server-owned fields (status, attempts, tenant) are refused."""

    # The example names a task every worker has, so it is a job the API accepts as it stands
    # (the docs page's "Try it out", and the fuzzer's examples phase, submit it).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"task": "echo", "args": {"hello": "world"}}]},
    )

    task: TaskName
    args: dict[str, Any] = Field(
        default_factory=dict, description="Arguments, validated against the task's input schema."
    )
    queue: QueueName | None = Field(default=None, description="Defaults to the task's queue.")
    priority: int = Field(default=0, ge=0, le=limits.MAX_PRIORITY)
    max_attempts: int | None = Field(default=None, ge=1, le=limits.MAX_ATTEMPTS_CEILING)
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=limits.MAX_TIMEOUT_SECONDS,
        description="Time limit of one attempt: the task is interrupted then, and killed after a "
        "short grace. Defaults to the task's.",
    )
    run_at: AwareDatetime | None = Field(
        default=None, description="Run no earlier than this instant (UTC offset required)."
    )
    retry_backoff_seconds: float | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_RETRY_BACKOFF_SECONDS,
        description="Base delay before a retry (doubled each attempt); defaults to the task's.",
    )
    retry_backoff_max_seconds: float | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_RETRY_BACKOFF_SECONDS,
        description="Cap on the delay before a retry; defaults to the task's.",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=limits.MAX_TAGS)
    metadata: dict[
        Annotated[str, Field(max_length=limits.MAX_TAG_LENGTH, pattern=limits.NO_NUL_PATTERN)],
        Annotated[
            str,
            Field(max_length=limits.MAX_METADATA_VALUE_LENGTH, pattern=limits.NO_NUL_PATTERN),
        ],
    ] = Field(default_factory=dict, max_length=limits.MAX_METADATA_KEYS)

    @field_validator("args")
    @classmethod
    def _args_within_limits(cls, args: dict[str, Any]) -> dict[str, Any]:
        if not args:
            return args
        if json_depth(args) > limits.MAX_ARGS_DEPTH:
            raise ValueError(f"nested deeper than the limit of {limits.MAX_ARGS_DEPTH} levels")
        size = len(_COMPACT_JSON.encode(args))
        if size > limits.MAX_ARGS_BYTES:
            raise ValueError(f"{size} bytes as JSON, over the limit of {limits.MAX_ARGS_BYTES}")
        if has_nul(args):
            raise ValueError("a string or key holds U+0000 (NUL), which cannot be stored")
        return args


class BatchCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"jobs": [{"task": "echo", "args": {"n": 1}}]}]},
    )

    jobs: list[JobCreate] = Field(min_length=1, max_length=limits.MAX_BATCH_SIZE)


class JobError(BaseModel):
    type: str
    message: str


class JobRead(BaseModel):
    """A job as the API shows it. Statuses follow the lifecycle in docs/architecture.md."""

    id: uuid.UUID
    task: str
    status: JobStatus
    queue: str
    priority: int
    args: dict[str, Any]
    attempts: int = Field(
        description="Number of the current (latest published) attempt; 0 before the first."
    )
    max_attempts: int
    timeout_seconds: int
    tags: list[str]
    metadata: dict[str, str]
    idempotency_key: str | None = None
    error: JobError | None = None
    created_at: datetime
    run_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = Field(
        default=None, description="When a RETRYING job's next attempt is due."
    )
    cycle: int = Field(
        default=1,
        description="Attempt cycle: 1, plus one for every retry or dead-letter replay.",
    )
    dead_letter: bool = Field(
        default=False, description="FAILED and listed in the dead letters (not purged)."
    )
    retry_backoff_seconds: float | None = None
    retry_backoff_max_seconds: float | None = None


class JobEventRead(BaseModel):
    """One fact in a job's history: a worker's lifecycle event (`received`, `started`,
    `succeeded`, `failed`, `skipped`) or one of job-service's own (`cancelled`, `retried`,
    `replayed`, `republished`, and `failed` with `WorkerLost` from the reconciler)."""

    attempt: int
    cycle: int
    type: str
    at: datetime
    worker: str | None = None
    duration_ms: float | None = None
    error_type: str | None = None
    error_message: str | None = None


class JobEventList(BaseModel):
    items: list[JobEventRead]


class JobList(BaseModel):
    items: list[JobRead]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class BatchRead(BaseModel):
    jobs: list[JobRead]


class JobResult(BaseModel):
    job_id: uuid.UUID
    result: Any
