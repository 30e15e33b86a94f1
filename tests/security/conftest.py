"""Security tests against the whole stack (gateway, job-service, result-service, a worker).

`security_stack` is one stack for the whole folder's matrices (authentication, scopes, tenant
isolation, idempotency), with the gateway trusting this folder's `identity_provider` for JWTs;
each module works with tenants of its own, so they don't see each other's objects. A module
that needs other settings (a low rate limit, canary secrets) takes `module_stack` and overrides
`stack_options` (tests/conftest.py) instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conveyor_devstack.stack import Stack
from conveyor_testing.stacks import running_stack

from .support import AUDIENCE, ISSUER, IdentityProvider, KeyMaker, Route, v1_routes


@pytest.fixture(scope="package")
def identity_provider() -> IdentityProvider:
    return IdentityProvider()


@pytest.fixture(scope="package")
def security_stack(
    postgres_backend: Any,
    redis_backend: Any,
    tmp_path_factory: pytest.TempPathFactory,
    identity_provider: IdentityProvider,
) -> Iterator[Stack]:
    jwt_settings = {
        "CONVEYOR_JWT_JWKS": identity_provider.jwks(),
        "CONVEYOR_JWT_ISSUER": ISSUER,
        "CONVEYOR_JWT_AUDIENCE": AUDIENCE,
        "CONVEYOR_JWT_ALGORITHMS": "RS256",
        # Expired means expired: no clock-skew allowance to wait out.
        "CONVEYOR_JWT_LEEWAY_SECONDS": "0",
    }
    log_dir = tmp_path_factory.mktemp("security-stack-logs")
    with running_stack(
        postgres_backend.url, redis_backend.url, log_dir, extra_env=jwt_settings
    ) as stack:
        yield stack


@pytest.fixture(scope="package")
def key_maker(security_stack: Stack) -> KeyMaker:
    return KeyMaker(security_stack.config.database_url)


@pytest.fixture(scope="module")
def gateway(security_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=security_stack.gateway_url, timeout=15.0) as client:
        yield client


@pytest.fixture(scope="module")
def routes(gateway: httpx.Client) -> list[Route]:
    return v1_routes(gateway)
