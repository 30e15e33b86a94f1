from __future__ import annotations

import pytest

from result_service.config import Settings


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ENVIRONMENT", "development")
    monkeypatch.setenv("CONVEYOR_REDIS_NAMESPACE", "ns-from-env")
    monkeypatch.setenv("CONVEYOR_RESULT_TTL_SECONDS", "60")
    settings = Settings()
    assert settings.environment == "development"
    assert settings.redis_namespace == "ns-from-env"
    assert settings.result_ttl_seconds == 60
    assert settings.port == 8002


def test_refuses_placeholder_token_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ENVIRONMENT", "production")
    monkeypatch.delenv("CONVEYOR_INTERNAL_TOKEN", raising=False)
    with pytest.raises(ValueError, match="CONVEYOR_INTERNAL_TOKEN"):
        Settings()
