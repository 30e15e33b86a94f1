"""The API-key contract of `/v1/api-keys`: what a tenant admin sends and reads back, and the
problems those routes answer.

A key's secret is returned once, in `ApiKeyCreated.key` (on creation and rotation); every other
answer carries only the public prefix. Keys belong to the caller's tenant; there is no field to
name another one."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from conveyor_common import limits
from conveyor_common.problems import Conflict, NotFound
from conveyor_common.scopes import Scope

MAX_KEY_NAME_LENGTH = 200
# How long a rotated key keeps working by default, and at most: long enough to roll a secret out
# to every client, short enough that a forgotten old key dies on its own.
DEFAULT_ROTATION_OVERLAP_SECONDS = 86_400
MAX_ROTATION_OVERLAP_SECONDS = 30 * 86_400


class ApiKeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ApiKeyCreate(BaseModel):
    """A new key for the caller's tenant. Its scopes must be ones the caller holds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=MAX_KEY_NAME_LENGTH,
        pattern=limits.NO_NUL_PATTERN,
        description="What the key is for, e.g. `billing-ci`. Not unique.",
    )
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=len(Scope),
        description="What the key may do; each must be a scope the calling credential holds.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working; must be in the future. Never if unset.",
    )


class ApiKeyRotate(BaseModel):
    """Body of a rotation (optional: `{}` or no body takes the installation's default overlap)."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ROTATION_OVERLAP_SECONDS,
        description=(
            "How long the old key keeps working next to the new one; 0 ends it at once. "
            "Default: the installation's `CONVEYOR_API_KEY_ROTATION_OVERLAP_SECONDS` "
            f"({DEFAULT_ROTATION_OVERLAP_SECONDS} s unless changed)."
        ),
    )


class ApiKeyRead(BaseModel):
    """A key as listed: never its secret or its hash."""

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The public part of the key (`cvk_<prefix>_...`).")
    scopes: list[str]
    status: ApiKeyStatus
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rotated_from: uuid.UUID | None = Field(
        default=None, description="The key this one replaced by rotation."
    )


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(
        description="The key itself (`cvk_<prefix>_<secret>`). Shown this once: store it now."
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class ApiKeyRotation(BaseModel):
    created: ApiKeyCreated = Field(description="The new key, with its secret (shown once).")
    previous: ApiKeyRead = Field(
        description="The old key: valid until its `expires_at` (now plus the overlap)."
    )


class ApiKeyNotFound(NotFound):
    slug = "api-key-not-found"
    title = "No such API key"


class ApiKeyNotRotatable(Conflict):
    slug = "api-key-not-rotatable"
    title = "Only an active key that was not rotated already can be rotated"
