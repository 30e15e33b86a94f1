"""Which URL `migrate` connects with, and which application role names it accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from job_service.config import MigrationSettings


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "DATABASE_MIGRATION_URL", "DATABASE_APP_ROLE", "SECRETS_DIR"):
        monkeypatch.delenv(f"CONVEYOR_{name}", raising=False)


def test_the_migration_url_falls_back_to_the_service_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://app:pw@db/conveyor")
    assert MigrationSettings().migration_url == "postgresql://app:pw@db/conveyor"
    monkeypatch.setenv("CONVEYOR_DATABASE_MIGRATION_URL", "postgresql://owner:pw@db/conveyor")
    assert MigrationSettings().migration_url == "postgresql://owner:pw@db/conveyor"


def test_empty_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://app:pw@db/conveyor")
    monkeypatch.setenv("CONVEYOR_DATABASE_MIGRATION_URL", "")
    monkeypatch.setenv("CONVEYOR_DATABASE_APP_ROLE", "")
    settings = MigrationSettings()
    assert settings.migration_url == "postgresql://app:pw@db/conveyor"
    assert settings.database_app_role is None


@pytest.mark.parametrize("role", ["conveyor_app", "_x", "App2", "a" * 63])
def test_plain_role_names_are_accepted(role: str) -> None:
    assert MigrationSettings(database_app_role=role).database_app_role == role


@pytest.mark.parametrize(
    "role", ['app"; DROP TABLE jobs; --', "app role", "2app", "app-role", "a" * 64, "rôle"]
)
def test_anything_else_is_refused_naming_the_setting(role: str) -> None:
    with pytest.raises(ValidationError, match="CONVEYOR_DATABASE_APP_ROLE"):
        MigrationSettings(database_app_role=role)
