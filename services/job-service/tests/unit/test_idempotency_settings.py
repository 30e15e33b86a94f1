"""`CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS`: a day by default, one minute to 30 days (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from job_service.config import Settings


def _settings(**values: Any) -> Settings:
    return Settings(environment="test", internal_token="x" * 32, **values)


def test_the_window_is_a_day_by_default() -> None:
    assert _settings().idempotency_retention_seconds == 86_400


@pytest.mark.parametrize("seconds", [60, 3_600, 2_592_000])
def test_a_window_within_the_bounds_is_taken(seconds: int) -> None:
    assert _settings(idempotency_retention_seconds=seconds).idempotency_retention_seconds == seconds


@pytest.mark.parametrize("seconds", [0, 59, 2_592_001, -1])
def test_a_window_outside_the_bounds_is_refused_naming_the_variable(seconds: int) -> None:
    with pytest.raises(ValidationError) as raised:
        _settings(idempotency_retention_seconds=seconds)
    [error] = raised.value.errors()
    assert error["loc"] == ("idempotency_retention_seconds",)
    assert "CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS must be from 60 (one minute) to 2592000" in str(
        error["msg"]
    )


def test_the_window_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS", "7200")
    assert _settings().idempotency_retention_seconds == 7_200
    monkeypatch.setenv("CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS", "30")
    with pytest.raises(ValidationError, match="CONVEYOR_IDEMPOTENCY_RETENTION_SECONDS"):
        _settings()
