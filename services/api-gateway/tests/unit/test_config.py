"""Settings the gateway refuses at start-up: unsafe JWT set-ups and unreadable rate limits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import limits
import pytest
from pydantic import ValidationError

from api_gateway.config import Settings, parse_rate_limit

JWT = {
    "jwt_jwks_url": "https://idp.example/.well-known/jwks.json",
    "jwt_issuer": "https://idp.example/",
    "jwt_audience": "conveyor",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CONVEYOR_"):
            monkeypatch.delenv(name)


def settings(**values: Any) -> Settings:
    return Settings(environment="test", internal_token="unit-test-token", **values)


def test_jwt_is_off_by_default() -> None:
    assert not settings().jwt_enabled


def test_jwt_defaults() -> None:
    configured = settings(**JWT)
    assert configured.jwt_enabled
    assert configured.jwt_algorithms == ("RS256", "ES256")
    assert configured.jwt_tenant_claim == "tenant"
    assert configured.jwt_scopes_claim == ("scope", "scp")


@pytest.mark.parametrize("algorithms", ["none", "HS256", "RS256,HS512", "RS256,none", ""])
def test_only_public_key_algorithms_may_be_pinned(algorithms: str) -> None:
    with pytest.raises(ValidationError, match="only public-key algorithms"):
        settings(**JWT, jwt_algorithms=algorithms)


@pytest.mark.parametrize("missing", ["jwt_issuer", "jwt_audience"])
def test_issuer_and_audience_are_required(missing: str) -> None:
    values = {k: v for k, v in JWT.items() if k != missing}
    with pytest.raises(
        ValidationError, match="needs CONVEYOR_JWT_ISSUER and CONVEYOR_JWT_AUDIENCE"
    ):
        settings(**values)


def test_one_jwks_source_only() -> None:
    with pytest.raises(ValidationError, match="not both"):
        settings(**JWT, jwt_jwks='{"keys": []}')


def test_plain_http_jwks_is_refused_in_production() -> None:
    values = {**JWT, "jwt_jwks_url": "http://idp.internal/jwks.json"}
    with pytest.raises(ValidationError, match="https:// in production"):
        Settings(environment="production", internal_token="real-token", **values)
    assert settings(**values).jwt_enabled  # tests may use a local http server


def test_jwks_path_must_exist(tmp_path: Path) -> None:
    values = {k: v for k, v in JWT.items() if k != "jwt_jwks_url"}
    with pytest.raises(ValidationError, match="JWKS as JSON or the path"):
        settings(**values, jwt_jwks=str(tmp_path / "missing.json"))


def test_jwt_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_JWT_JWKS_URL", JWT["jwt_jwks_url"])
    monkeypatch.setenv("CONVEYOR_JWT_ISSUER", JWT["jwt_issuer"])
    monkeypatch.setenv("CONVEYOR_JWT_AUDIENCE", JWT["jwt_audience"])
    monkeypatch.setenv("CONVEYOR_JWT_ALGORITHMS", "ES256, EdDSA")
    monkeypatch.setenv("CONVEYOR_JWT_SCOPES_CLAIM", "scp")
    monkeypatch.setenv("CONVEYOR_RATE_LIMIT", "10/second;100/minute")
    monkeypatch.setenv(
        "CONVEYOR_RATE_LIMIT_OVERRIDES", '{"batch-team": "1000/minute", "ops": "unlimited"}'
    )

    configured = settings()

    assert configured.jwt_algorithms == ("ES256", "EdDSA")
    assert configured.jwt_scopes_claim == ("scp",)
    assert configured.rate_limit_overrides == {"batch-team": "1000/minute", "ops": "unlimited"}


@pytest.mark.parametrize(
    "values",
    [
        {"rate_limit": "lots"},
        {"rate_limit": ""},
        {"rate_limit_overrides": {"acme": "10/fortnight"}},
    ],
)
def test_unreadable_rate_limits_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="is not a rate limit"):
        settings(**values)


def test_rate_limit_strings() -> None:
    assert parse_rate_limit("50/second;1000/minute") == [
        limits.parse("50/second"),
        limits.parse("1000/minute"),
    ]
    assert parse_rate_limit("Unlimited") == []
    assert parse_rate_limit(settings().rate_limit)  # the default is a real limit
