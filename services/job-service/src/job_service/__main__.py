"""`python -m job_service serve | migrate | create-api-key | revoke-api-key`.

`create-api-key` prints the new key, once, on stdout and nothing else there (logs go to
stderr), so `KEY=$(python -m job_service create-api-key ...)` works."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence

import structlog

from conveyor_common.logging import configure_logging
from conveyor_common.scopes import Scope
from job_service.config import SERVICE_NAME, MigrationSettings, Settings, get_settings

log = structlog.get_logger("job_service.cli")


def serve(settings: Settings) -> None:
    import uvicorn

    from job_service.app import create_app

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
    from job_service.migrate import upgrade

    upgrade(settings.database_url.get_secret_value())
    log.info("migrations.applied", revision="head")


async def create_api_key(
    settings: Settings, tenant_id: str, name: str, scopes: Sequence[str] | None = None
) -> str:
    """Creates a key and returns its plaintext (the only time it exists outside the caller)."""
    from job_service.api_keys.service import ApiKeyService
    from job_service.db import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            created = await ApiKeyService(session).create(tenant_id, name, scopes)
        return created.plaintext
    finally:
        await engine.dispose()


async def revoke_api_key(settings: Settings, key_id: uuid.UUID) -> None:
    from job_service.api_keys.service import ApiKeyService
    from job_service.db import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await ApiKeyService(session).revoke(key_id)
    finally:
        await engine.dispose()


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
    revoke = commands.add_parser("revoke-api-key", help="revoke an API key by its id")
    revoke.add_argument("--id", required=True, type=uuid.UUID)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "migrate":
        migration_settings = MigrationSettings()
        configure_logging(
            SERVICE_NAME, json=migration_settings.json_logs, level=migration_settings.log_level
        )
        migrate(migration_settings)
        return 0
    settings = get_settings()
    configure_logging(SERVICE_NAME, json=settings.json_logs, level=settings.log_level)
    from conveyor_common.problems import ConveyorError

    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "create-api-key":
            key = asyncio.run(create_api_key(settings, args.tenant, args.name, args.scopes))
            sys.stdout.write(key + "\n")
            sys.stdout.flush()
        elif args.command == "revoke-api-key":
            asyncio.run(revoke_api_key(settings, args.id))
    except ConveyorError as exc:
        log.error("cli.failed", command=args.command, error=exc.detail or exc.title)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
