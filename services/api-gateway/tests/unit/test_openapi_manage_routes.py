"""The OpenAPI document lists the history, cancel, retry and dead-letter routes with their real
public models and the problems they answer."""

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


def request_body(operation: dict[str, Any]) -> dict[str, str]:
    schema: dict[str, str] = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema


def test_public_models_are_in_the_schema(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("JobEventList", "JobEventRead", "DeadLetterList", "DeadLetterRead",
                 "DeadLetterIds", "DeadLetterPurge", "DeadLetterFilter",
                 "DeadLetterReplayResult", "DeadLetterPurgeResult"):  # fmt: skip
        assert name in schemas, name
    assert {"traceback", "failed_at", "history"} <= set(schemas["DeadLetterRead"]["properties"])


def test_job_routes(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    events = paths["/v1/jobs/{job_id}/events"]["get"]
    assert answer(events, "200") == ref("JobEventList")
    assert {"401", "403", "404", "429", "503"} <= set(events["responses"])
    cancel = paths["/v1/jobs/{job_id}/cancel"]["post"]
    assert answer(cancel, "200") == ref("JobRead")
    assert {"401", "403", "404", "409"} <= set(cancel["responses"])
    retry = paths["/v1/jobs/{job_id}/retry"]["post"]
    assert answer(retry, "202") == ref("JobRead")
    assert {"401", "403", "404", "409"} <= set(retry["responses"])
    listing = paths["/v1/jobs"]["get"]
    assert "tag" in {p["name"] for p in listing["parameters"]}


def test_dead_letter_routes(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    listing = paths["/v1/dead-letters"]["get"]
    assert answer(listing, "200") == ref("DeadLetterList")
    assert {p["name"] for p in listing["parameters"]} == {
        "task", "queue", "error_type", "failed_after", "failed_before", "limit", "cursor",
    }  # fmt: skip
    one = paths["/v1/dead-letters/{job_id}"]
    assert answer(one["get"], "200") == ref("DeadLetterRead")
    assert "404" in one["get"]["responses"]
    assert "content" not in one["delete"]["responses"]["204"]
    assert "404" in one["delete"]["responses"]
    replay_one = paths["/v1/dead-letters/{job_id}/replay"]["post"]
    assert answer(replay_one, "202") == ref("JobRead")
    assert "404" in replay_one["responses"]
    replay = paths["/v1/dead-letters/replay"]["post"]
    assert request_body(replay) == ref("DeadLetterIds")
    assert answer(replay, "202") == ref("DeadLetterReplayResult")
    purge = paths["/v1/dead-letters/purge"]["post"]
    assert request_body(purge) == ref("DeadLetterPurge")
    assert answer(purge, "200") == ref("DeadLetterPurgeResult")
    for operation in (replay, purge):
        assert {"400", "401", "403", "413", "415", "422"} <= set(operation["responses"])


def test_problems_are_served_as_problem_json(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    for path, method, status in [
        ("/v1/jobs/{job_id}/cancel", "post", "409"),
        ("/v1/jobs/{job_id}/retry", "post", "409"),
        ("/v1/dead-letters/{job_id}", "delete", "404"),
        ("/v1/dead-letters/purge", "post", "403"),
    ]:
        content = paths[path][method]["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == ref("Problem"), path
