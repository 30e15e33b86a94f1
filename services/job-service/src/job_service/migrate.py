"""Running Alembic from code: `python -m job_service migrate` and the tests use these."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

SCRIPT_LOCATION = "job_service:migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if database_url:
        config.attributes["url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Blocking: runs its own event loop (call it from a thread inside async code)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
