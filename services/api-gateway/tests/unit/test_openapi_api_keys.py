"""The OpenAPI document lists the `/v1/api-keys` routes with their public models and problems."""

from __future__ import annotations

from typing import Any

import pytest

from api_gateway.app import create_app
from api_gateway.config import Settings


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    app = create_app(Settings(environment="test", internal_token="openapi-test-token"))
    document: dict[str, Any] = app.openapi()
    return document


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(operation: dict[str, Any], status: str) -> dict[str, str]:
    schema: dict[str, str] = operation["responses"][status]["content"]["application/json"]["schema"]
    return schema


def test_models_are_in_the_schema(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("ApiKeyCreate", "ApiKeyCreated", "ApiKeyRead", "ApiKeyList", "ApiKeyRotate",
                 "ApiKeyRotation"):  # fmt: skip
        assert name in schemas, name
    assert "key" in schemas["ApiKeyCreated"]["properties"]
    assert "key" not in schemas["ApiKeyRead"]["properties"]
    assert "secret_hash" not in schemas["ApiKeyRead"]["properties"]
    assert schemas["ApiKeyCreate"]["additionalProperties"] is False


def test_routes(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    create = paths["/v1/api-keys"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == ref("ApiKeyCreate")
    assert answer(create, "201") == ref("ApiKeyCreated")
    assert {"401", "403", "413", "415", "422", "429"} <= set(create["responses"])
    assert answer(paths["/v1/api-keys"]["get"], "200") == ref("ApiKeyList")
    assert answer(paths["/v1/api-keys/{key_id}"]["get"], "200") == ref("ApiKeyRead")
    revoke = paths["/v1/api-keys/{key_id}/revoke"]["post"]
    assert answer(revoke, "200") == ref("ApiKeyRead")
    assert {"401", "403", "404"} <= set(revoke["responses"])
    rotate = paths["/v1/api-keys/{key_id}/rotate"]["post"]
    assert answer(rotate, "201") == ref("ApiKeyRotation")
    assert {"401", "403", "404", "409", "422"} <= set(rotate["responses"])
    assert "delete" not in paths["/v1/api-keys/{key_id}"]
