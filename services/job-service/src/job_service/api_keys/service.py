"""Creating, listing, verifying, revoking and rotating API keys. Services flush; the caller's
unit of work (the request, or the command line's transaction) commits.

`tenant_id=None` on get/revoke/rotate means any tenant: the operator's command line. Every HTTP
route passes the caller's tenant, so another tenant's key answers exactly like a missing one."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common.api_keys import (
    MAX_KEY_NAME_LENGTH,
    MAX_ROTATION_OVERLAP_SECONDS,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyNotFound,
    ApiKeyNotRotatable,
    ApiKeyRead,
    ApiKeyRotation,
    ApiKeyStatus,
)
from conveyor_common.ids import new_id
from conveyor_common.jobs import TenantId
from conveyor_common.problems import FieldError, InvalidRequest, Unauthorized
from conveyor_common.scopes import DEFAULT_KEY_SCOPES, Scope
from job_service.api_keys.keys import (
    format_key,
    hash_secret,
    new_prefix,
    new_secret,
    parse_key,
    secret_matches,
)
from job_service.api_keys.repository import ApiKeyRepository
from job_service.api_keys.schemas import VerifiedKey
from job_service.clock import utcnow
from job_service.jobs.cursor import decode_cursor, encode_cursor
from job_service.models import ApiKey

log = structlog.get_logger("job_service.api_keys")

_TENANT = TypeAdapter(TenantId)
# Hash compared when no key has the prefix, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hash_secret("conveyor-no-such-key")


def key_status(key: ApiKey, now: datetime) -> ApiKeyStatus:
    if key.revoked_at is not None:
        return ApiKeyStatus.REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return ApiKeyStatus.EXPIRED
    return ApiKeyStatus.ACTIVE


def key_read(key: ApiKey, now: datetime) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        status=key_status(key, now),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        rotated_from=key.rotated_from,
    )


class ApiKeyService:
    def __init__(self, session: AsyncSession, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.repository = ApiKeyRepository.from_session(session)
        self.clock = clock

    async def create(
        self,
        tenant_id: str,
        name: str,
        scopes: Iterable[str] | None = None,
        *,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        try:
            _TENANT.validate_python(tenant_id)
        except ValidationError:
            raise InvalidRequest(
                "tenant: lowercase letters, digits, '-' and '_', at most 64",
                errors=[FieldError(field="tenant", reason="not a valid tenant id")],
            ) from None
        if not name or len(name) > MAX_KEY_NAME_LENGTH:
            raise InvalidRequest(
                f"name: 1 to {MAX_KEY_NAME_LENGTH} characters",
                errors=[FieldError(field="name", reason="must be 1 to 200 characters")],
            )
        chosen = sorted(set(scopes) if scopes is not None else set(DEFAULT_KEY_SCOPES))
        unknown = [s for s in chosen if s not in {scope.value for scope in Scope}]
        if unknown or not chosen:
            raise InvalidRequest(
                f"scopes: choose from {', '.join(s.value for s in Scope)}",
                errors=[FieldError(field="scopes", reason="unknown or empty scopes")],
            )
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest(
                "body.expires_at: must be in the future",
                errors=[FieldError(field="body.expires_at", reason="must be in the future")],
            )
        created = await self._insert(tenant_id, name, chosen, now, expires_at=expires_at)
        log.info(
            "api_keys.created", key_id=str(created.id), tenant_id=tenant_id, prefix=created.prefix
        )
        return created

    async def list(self, tenant_id: str, *, limit: int, cursor: str | None = None) -> ApiKeyList:
        before_id = decode_cursor(cursor) if cursor is not None else None
        rows = await self.repository.list(tenant_id, limit=limit + 1, before_id=before_id)
        page = rows[:limit]
        now = self.clock()
        next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
        return ApiKeyList(items=[key_read(row, now) for row in page], next_cursor=next_cursor)

    async def list_all(self, tenant_id: str, *, page_size: int = 500) -> builtins.list[ApiKeyRead]:
        """Every key of the tenant, newest first (the command line's listing)."""
        keys: builtins.list[ApiKeyRead] = []
        cursor: str | None = None
        while True:
            page = await self.list(tenant_id, limit=page_size, cursor=cursor)
            keys.extend(page.items)
            if page.next_cursor is None:
                return keys
            cursor = page.next_cursor

    async def get(self, key_id: uuid.UUID, *, tenant_id: str | None) -> ApiKeyRead:
        row = await self.repository.get(key_id, tenant_id)
        if row is None:
            raise _not_found(key_id)
        return key_read(row, self.clock())

    async def revoke(self, key_id: uuid.UUID, *, tenant_id: str | None = None) -> ApiKeyRead:
        """Revokes the key at once. Revoking a revoked key changes nothing (a retried request
        gets the same answer)."""
        row = await self.repository.lock(key_id, tenant_id)
        if row is None:
            raise _not_found(key_id)
        if row.revoked_at is None:
            row.revoked_at = self.clock()
            await self.repository.session.flush()
            log.info("api_keys.revoked", key_id=str(key_id), tenant_id=row.tenant_id)
        return key_read(row, self.clock())

    async def rotate(
        self, key_id: uuid.UUID, *, overlap_seconds: int, tenant_id: str | None = None
    ) -> ApiKeyRotation:
        """A new key with the old one's tenant, name, scopes and expiry; the old key keeps
        working for `overlap_seconds` more (never longer than it would have anyway), so clients
        can switch without a gap. A key is rotated once: next time, rotate its replacement."""
        if not 0 <= overlap_seconds <= MAX_ROTATION_OVERLAP_SECONDS:
            raise InvalidRequest(
                f"overlap_seconds: 0 to {MAX_ROTATION_OVERLAP_SECONDS}",
                errors=[
                    FieldError(
                        field="overlap_seconds",
                        reason=f"must be 0 to {MAX_ROTATION_OVERLAP_SECONDS}",
                    )
                ],
            )
        row = await self.repository.lock(key_id, tenant_id)
        if row is None:
            raise _not_found(key_id)
        now = self.clock()
        status = key_status(row, now)
        if status is not ApiKeyStatus.ACTIVE:
            raise ApiKeyNotRotatable(
                f"API key {key_id} is {status}; create a new key instead.",
                extra={"status": str(status)},
            )
        successor = await self.repository.successor(row.id)
        if successor is not None:
            raise ApiKeyNotRotatable(
                f"API key {key_id} was rotated already; rotate its replacement.",
                extra={"replaced_by": str(successor.id)},
            )
        # The replacement inherits the old expiry: rotating must not extend a temporary key.
        inherited_expiry = row.expires_at
        overlap_end = now + timedelta(seconds=overlap_seconds)
        row.expires_at = (
            overlap_end if inherited_expiry is None else min(inherited_expiry, overlap_end)
        )
        created = await self._insert(
            row.tenant_id,
            row.name,
            list(row.scopes),
            now,
            expires_at=inherited_expiry,
            rotated_from=row.id,
        )
        log.info(
            "api_keys.rotated",
            key_id=str(row.id),
            new_key_id=str(created.id),
            tenant_id=row.tenant_id,
            prefix=created.prefix,
            overlap_seconds=overlap_seconds,
            old_key_expires_at=row.expires_at.isoformat(),
        )
        return ApiKeyRotation(created=created, previous=key_read(row, now))

    async def verify(self, presented: str) -> VerifiedKey:
        parsed = parse_key(presented)
        row = await self.repository.by_prefix(parsed.prefix) if parsed else None
        valid = secret_matches(
            parsed.secret if parsed else "", row.secret_hash if row else _DUMMY_HASH
        )
        if row is None or not valid:
            raise Unauthorized("The API key is not valid.")
        status = key_status(row, self.clock())
        if status is not ApiKeyStatus.ACTIVE:
            log.info("api_keys.rejected", key_id=str(row.id), reason=str(status))
            raise Unauthorized("The API key is not valid.")
        return VerifiedKey(
            tenant_id=row.tenant_id,
            scopes=list(row.scopes),
            key_id=row.id,
            expires_at=row.expires_at,
        )

    async def _insert(
        self,
        tenant_id: str,
        name: str,
        scopes: builtins.list[str],
        now: datetime,
        *,
        expires_at: datetime | None,
        rotated_from: uuid.UUID | None = None,
    ) -> ApiKeyCreated:
        prefix, secret = new_prefix(), new_secret()
        key = ApiKey(
            id=new_id(),
            tenant_id=tenant_id,
            name=name,
            prefix=prefix,
            secret_hash=hash_secret(secret),
            scopes=scopes,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            rotated_from=rotated_from,
        )
        await self.repository.add(key)
        return ApiKeyCreated(**key_read(key, now).model_dump(), key=format_key(prefix, secret))


def _not_found(key_id: uuid.UUID) -> ApiKeyNotFound:
    return ApiKeyNotFound(f"No API key {key_id}.", extra={"key_id": str(key_id)})
