"""The public API's OpenAPI document shows the real models, problems and security scheme."""

from __future__ import annotations

from typing import Any

import httpx
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


def test_public_models_are_in_the_schema(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("JobCreate", "BatchCreate", "JobRead", "JobList", "BatchRead", "JobResult",
                 "TaskCatalog", "Problem"):  # fmt: skip
        assert name in schemas
    assert "priority" in schemas["JobCreate"]["properties"]


def test_routes_use_the_public_models(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    submit = paths["/v1/jobs"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == ref("JobCreate")
    assert submit["responses"]["202"]["content"]["application/json"]["schema"] == ref("JobRead")
    batch = paths["/v1/jobs/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"] == ref("BatchCreate")
    assert batch["responses"]["202"]["content"]["application/json"]["schema"] == ref("BatchRead")
    listing = paths["/v1/jobs"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == ref("JobList")
    assert {p["name"] for p in listing["parameters"]} >= {
        "status", "task", "queue", "created_after", "created_before", "limit", "cursor",
    }  # fmt: skip
    read = paths["/v1/jobs/{job_id}"]["get"]
    assert read["responses"]["200"]["content"]["application/json"]["schema"] == ref("JobRead")
    result = paths["/v1/jobs/{job_id}/result"]["get"]
    assert result["responses"]["200"]["content"]["application/json"]["schema"] == ref("JobResult")
    tasks = paths["/v1/tasks"]["get"]
    assert tasks["responses"]["200"]["content"]["application/json"]["schema"] == ref("TaskCatalog")


def test_routes_declare_their_problems(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    submit = paths["/v1/jobs"]["post"]["responses"]
    assert {"400", "401", "403", "413", "415", "422", "429", "502", "503", "504"} <= set(submit)
    assert submit["401"]["content"]["application/problem+json"]["schema"] == ref("Problem")
    result = paths["/v1/jobs/{job_id}/result"]["get"]["responses"]
    assert {"404", "409", "410", "429"} <= set(result)


def test_bearer_security_scheme(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"].lower() == "bearer"
    for path, operations in openapi["paths"].items():
        for operation in operations.values():
            assert operation["security"] == [{"bearer": []}], path


def test_only_the_public_api_is_documented(openapi: dict[str, Any]) -> None:
    assert all(path.startswith("/v1/") for path in openapi["paths"])


async def test_docs_page_is_served() -> None:
    app = create_app(Settings(environment="test", internal_token="openapi-test-token"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as c:
        response = await c.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
