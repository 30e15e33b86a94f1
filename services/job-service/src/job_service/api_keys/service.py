"""Creating, verifying and revoking API keys."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor_common.ids import new_id
from conveyor_common.jobs import TenantId
from conveyor_common.problems import FieldError, InvalidRequest, NotFound, Unauthorized
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
from job_service.models import ApiKey

log = structlog.get_logger("job_service.api_keys")

_TENANT = TypeAdapter(TenantId)
# Hash compared when no key has the prefix, so a miss costs the same as a wrong secret.
_DUMMY_HASH = hash_secret("conveyor-no-such-key")


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: uuid.UUID
    tenant_id: str
    name: str
    prefix: str
    scopes: list[str]
    plaintext: str  # shown once; never stored


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
    ) -> CreatedKey:
        try:
            _TENANT.validate_python(tenant_id)
        except ValidationError:
            raise InvalidRequest(
                "tenant: lowercase letters, digits, '-' and '_', at most 64",
                errors=[FieldError(field="tenant", reason="not a valid tenant id")],
            ) from None
        if not name or len(name) > 200:
            raise InvalidRequest(
                "name: 1 to 200 characters",
                errors=[FieldError(field="name", reason="must be 1 to 200 characters")],
            )
        chosen = sorted(set(scopes) if scopes is not None else set(DEFAULT_KEY_SCOPES))
        unknown = [s for s in chosen if s not in {scope.value for scope in Scope}]
        if unknown or not chosen:
            raise InvalidRequest(
                f"scopes: choose from {', '.join(s.value for s in Scope)}",
                errors=[FieldError(field="scopes", reason="unknown or empty scopes")],
            )
        prefix, secret = new_prefix(), new_secret()
        key = ApiKey(
            id=new_id(),
            tenant_id=tenant_id,
            name=name,
            prefix=prefix,
            secret_hash=hash_secret(secret),
            scopes=chosen,
            created_at=self.clock(),
            expires_at=expires_at,
            revoked_at=None,
        )
        await self.repository.add(key)
        log.info("api_keys.created", key_id=str(key.id), tenant_id=tenant_id, prefix=prefix)
        return CreatedKey(key.id, tenant_id, name, prefix, chosen, format_key(prefix, secret))

    async def verify(self, presented: str) -> VerifiedKey:
        parsed = parse_key(presented)
        row = await self.repository.by_prefix(parsed.prefix) if parsed else None
        valid = secret_matches(
            parsed.secret if parsed else "", row.secret_hash if row else _DUMMY_HASH
        )
        if row is None or not valid:
            raise Unauthorized("The API key is not valid.")
        now = self.clock()
        if row.revoked_at is not None:
            log.info("api_keys.rejected", key_id=str(row.id), reason="revoked")
            raise Unauthorized("The API key is not valid.")
        if row.expires_at is not None and row.expires_at <= now:
            log.info("api_keys.rejected", key_id=str(row.id), reason="expired")
            raise Unauthorized("The API key is not valid.")
        return VerifiedKey(tenant_id=row.tenant_id, scopes=list(row.scopes), key_id=row.id)

    async def revoke(self, key_id: uuid.UUID) -> None:
        if not await self.repository.revoke(key_id, self.clock()):
            raise NotFound(f"No active API key {key_id}.")
        log.info("api_keys.revoked", key_id=str(key_id))
