"""Property-based fuzzing of the public API (issue 4, "Done when"): schemathesis sends
generated requests, valid and invalid, to every `/v1` operation of a whole stack, with a
credential holding every scope. No answer may be a 5xx, and every answer must match the OpenAPI
document: a documented status code, the documented content type, a body that fits the
documented schema. The document is the gateway's own, checked equal to what the running gateway
serves at `/openapi.json`.

Bounded and repeatable: a fixed seed, derandomized generation and a fixed number of examples per
operation (about 1,300 requests) keep the file near a minute on two cores; a failure names the
operation and prints a `curl` that reproduces it. docs/decisions/0014 says why and how.

The worker consumes a queue no job is published to: generated jobs are accepted, listed,
cancelled and retried, but never run, so no generated `http.request` ever leaves the machine."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from api_gateway.app import create_app
from api_gateway.config import Settings
from conveyor_devstack.stack import Stack
from conveyor_testing.api import auth

from .support import AUDIENCE, ISSUER, IdentityProvider

pytestmark = [pytest.mark.e2e]

SEED = 20_261_128
# Generated examples per operation in the fuzzing phase; the examples and coverage phases
# (the document's own examples, boundary values, each constraint broken once) come on top.
MAX_EXAMPLES = 15
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@pytest.fixture(scope="module")
def identity_provider() -> IdentityProvider:
    return IdentityProvider()


@pytest.fixture(scope="module")
def stack_options(identity_provider: IdentityProvider) -> dict[str, Any]:
    return {
        "extra_env": {
            # An unguessable queue name: nothing the fuzzer submits can land on it.
            "CONVEYOR_WORKER_QUEUES": f"fuzz-parked-{secrets.token_hex(8)}",
            "CONVEYOR_JWT_JWKS": identity_provider.jwks(),
            "CONVEYOR_JWT_ISSUER": ISSUER,
            "CONVEYOR_JWT_AUDIENCE": AUDIENCE,
            "CONVEYOR_JWT_ALGORITHMS": "RS256",
        }
    }


@pytest.fixture(scope="module")
def credential(identity_provider: IdentityProvider) -> str:
    """A token with every scope, not an API key: the fuzzer creates, rotates and revokes keys
    with ids it reads from answers, and must not cut off its own access doing so."""
    return identity_provider.token(tenant=f"fuzz-{uuid.uuid4().hex[:8]}")


def fuzz_config() -> SchemathesisConfig:
    checks: dict[str, Any] = {"enabled": False}
    checks.update({name: {"enabled": True} for name in CHECKS})
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # Stateful runs chain operations through links the document does not declare.
            "phases": {"stateful": {"enabled": False}},
            "checks": checks,
        }
    )


def served_document() -> dict[str, Any]:
    """The gateway's OpenAPI document, built as the gateway builds it. Test generation needs it
    at collection time, before any stack runs; the first test checks it is exactly what the
    running gateway serves at `/openapi.json`."""
    app = create_app(Settings(environment="test", internal_token="fuzz-schema-only"))
    document: dict[str, Any] = app.openapi()
    return document


DOCUMENT = served_document()
# Every `/v1` operation; the document lists nothing else (tests/unit/test_openapi.py).
schema = schemathesis.openapi.from_dict(DOCUMENT, config=fuzz_config()).include(path_regex="^/v1/")


def test_the_fuzzed_document_is_the_one_the_gateway_serves(module_stack: Stack) -> None:
    answer = httpx.get(f"{module_stack.gateway_url}/openapi.json", timeout=15.0)
    assert answer.status_code == 200
    assert answer.json() == DOCUMENT
    assert len(list(schema.get_all_operations())) >= 10


@schema.parametrize()
def test_every_operation_answers_as_documented_and_never_5xx(
    case: Case[Any], module_stack: Stack, credential: str
) -> None:
    case.call_and_validate(base_url=module_stack.gateway_url, headers=auth(credential), timeout=15)


def test_the_fuzzer_got_past_validation(module_stack: Stack, credential: str) -> None:
    """Guards against a vacuous run (every request refused as unauthorized or invalid, which the
    document allows): valid submissions and key creations went through."""
    with httpx.Client(base_url=module_stack.gateway_url, headers=auth(credential)) as client:
        jobs = client.get("/v1/jobs", params={"limit": 5})
        keys = client.get("/v1/api-keys")
    assert jobs.status_code == 200, jobs.text
    assert jobs.json()["items"], "no generated job was accepted"
    assert keys.status_code == 200, keys.text
    assert keys.json()["items"], "no generated API key was created"
