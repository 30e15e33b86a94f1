"""`python -m job_service serve | migrate | create-api-key | list-api-keys | rotate-api-key |
revoke-api-key`.

`create-api-key` and `rotate-api-key` print the new key, once, on stdout and nothing else there
(logs go to stderr), so `KEY=$(python -m job_service create-api-key ...)` works. They need only
the database: the first admin key of a new installation is made this way.

Revoking or rotating here tells the gateways through Redis to drop what they cached for the key
(best effort: if Redis cannot be reached the key may still work for up to the gateways'
`CONVEYOR_AUTH_CACHE_TTL_SECONDS`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import structlog

from conveyor_common.logging import configure_logging
from conveyor_common.scopes import Scope
from job_service.config import (
    CONNECTION_NAME,
    SERVICE_NAME,
    MigrationSettings,
    Settings,
    get_settings,
)

if TYPE_CHECKING:
    from conveyor_common.api_keys import ApiKeyRead, ApiKeyRotation
    from job_service.api_keys.service import ApiKeyService

log = structlog.get_logger("job_service.cli")


def serve(settings: Settings) -> None:
    import uvicorn

    from conveyor_common.tracing import configure_tracing
    from job_service.app import create_app

    # Only the server traces: one-shot commands would export a lone span per run.
    configure_tracing(SERVICE_NAME, settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,  # our structlog handlers render uvicorn's records
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        proxy_headers=False,
    )
    uvicorn.Server(config).run()


def migrate(settings: MigrationSettings) -> None:
    from job_service.grants import grant_app_role
    from job_service.migrate import upgrade

    upgrade(settings.migration_url)
    log.info("migrations.applied", revision="head")
    if settings.database_app_role is None:
        return
    summary = grant_app_role(settings.migration_url, settings.database_app_role)
    if summary is None:
        log.info("migrations.grants_skipped", reason="sqlite has no roles")
    else:
        log.info(
            "migrations.grants_applied",
            role=summary.role,
            database=summary.database,
            schema=summary.schema,
            tables=summary.tables,
        )


@asynccontextmanager
async def _api_keys(settings: Settings) -> AsyncIterator[ApiKeyService]:
    """The key service in one transaction, committed when the block ends without error."""
    from job_service.api_keys.service import ApiKeyService
    from job_service.db import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            yield ApiKeyService(session)
    finally:
        await engine.dispose()


async def announce_revocation(settings: Settings, key_id: uuid.UUID) -> None:
    """Publishes the key id on the channel every gateway listens to, so each drops its cached
    answer for the key now. Best effort, after the commit: a failure is logged, not raised."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError

    from conveyor_common.redis_keys import RedisKeys

    redis = Redis.from_url(
        settings.redis_dsn(),
        **settings.redis_client_kwargs(
            client_name=CONNECTION_NAME,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            retry=Retry(NoBackoff(), 0),
        ),
    )
    try:
        await redis.publish(RedisKeys(settings.redis_namespace).api_key_revocations, str(key_id))
    except (RedisError, OSError) as exc:
        log.warning(
            "api_keys.revocation_not_announced", key_id=str(key_id), error=type(exc).__name__
        )
    finally:
        await redis.aclose()


async def create_api_key(
    settings: Settings, tenant_id: str, name: str, scopes: Sequence[str] | None = None
) -> str:
    """Creates a key and returns its plaintext (the only time it exists outside the caller)."""
    async with _api_keys(settings) as service:
        created = await service.create(tenant_id, name, scopes)
    return created.key


async def list_api_keys(settings: Settings, tenant_id: str) -> list[ApiKeyRead]:
    async with _api_keys(settings) as service:
        return await service.list_all(tenant_id)


async def revoke_api_key(
    settings: Settings, key_id: uuid.UUID, tenant_id: str | None = None
) -> ApiKeyRead:
    async with _api_keys(settings) as service:
        revoked = await service.revoke(key_id, tenant_id=tenant_id)
    await announce_revocation(settings, key_id)
    return revoked


async def rotate_api_key(
    settings: Settings,
    key_id: uuid.UUID,
    *,
    overlap_seconds: int | None = None,
    tenant_id: str | None = None,
) -> ApiKeyRotation:
    overlap = (
        settings.api_key_rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
    )
    async with _api_keys(settings) as service:
        rotation = await service.rotate(key_id, overlap_seconds=overlap, tenant_id=tenant_id)
    await announce_revocation(settings, key_id)
    return rotation


_TABLE_COLUMNS = ("id", "prefix", "name", "status", "scopes", "created_at", "expires_at")


def format_key_table(keys: Sequence[ApiKeyRead]) -> str:
    rows = [_TABLE_COLUMNS] + [
        (
            str(key.id),
            key.prefix,
            key.name,
            str(key.status),
            ",".join(key.scopes),
            key.created_at.isoformat(timespec="seconds"),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "-",
        )
        for key in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_TABLE_COLUMNS))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )


def format_key_json(keys: Sequence[ApiKeyRead]) -> str:
    return json.dumps([key.model_dump(mode="json") for key in keys], indent=2) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m job_service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service and its background loops")
    commands.add_parser("migrate", help="upgrade the database to the latest schema")
    create = commands.add_parser("create-api-key", help="create an API key; prints it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scopes",
        nargs="+",
        choices=[scope.value for scope in Scope],
        help="default: jobs:write jobs:read jobs:manage",
    )
    listing = commands.add_parser(
        "list-api-keys", help="list a tenant's API keys, newest first (never their secrets)"
    )
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--format", choices=["table", "json"], default="table")
    rotate = commands.add_parser(
        "rotate-api-key",
        help="replace an API key by a new one (printed once); the old one works for the overlap",
    )
    rotate.add_argument("--id", required=True, type=uuid.UUID)
    rotate.add_argument("--tenant", help="refuse the key unless it belongs to this tenant")
    rotate.add_argument(
        "--overlap-seconds",
        type=int,
        help="how long the old key keeps working; 0 ends it now "
        "(default: CONVEYOR_API_KEY_ROTATION_OVERLAP_SECONDS, 86400)",
    )
    revoke = commands.add_parser("revoke-api-key", help="revoke an API key by its id")
    revoke.add_argument("--id", required=True, type=uuid.UUID)
    revoke.add_argument("--tenant", help="refuse the key unless it belongs to this tenant")
    return parser


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        migration_settings = MigrationSettings()
        configure_logging(
            SERVICE_NAME, json=migration_settings.json_logs, level=migration_settings.log_level
        )
        from job_service.grants import GrantError

        try:
            migrate(migration_settings)
        except GrantError as exc:
            log.error("migrations.grants_failed", error=str(exc))
            return 2
        return 0
    settings = get_settings()
    configure_logging(SERVICE_NAME, json=settings.json_logs, level=settings.log_level)
    from conveyor_common.problems import ConveyorError

    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "create-api-key":
            _out(asyncio.run(create_api_key(settings, args.tenant, args.name, args.scopes)) + "\n")
        elif args.command == "list-api-keys":
            keys = asyncio.run(list_api_keys(settings, args.tenant))
            _out(format_key_json(keys) if args.format == "json" else format_key_table(keys))
        elif args.command == "rotate-api-key":
            rotation = asyncio.run(
                rotate_api_key(
                    settings, args.id, overlap_seconds=args.overlap_seconds, tenant_id=args.tenant
                )
            )
            _out(rotation.created.key + "\n")
        elif args.command == "revoke-api-key":
            asyncio.run(revoke_api_key(settings, args.id, args.tenant))
    except ConveyorError as exc:
        log.error("cli.failed", command=args.command, error=exc.detail or exc.title)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
