"""Tenant B, holding every scope, against tenant A's objects on every `/v1` route the running
gateway publishes: each object route answers exactly as it does for an id that does not exist,
nothing of A's changes, and no list or bulk route shows or touches A's objects."""

from __future__ import annotations

import dataclasses
import re
import uuid
from typing import Any

import httpx
import pytest

from .support import (
    ApiKey,
    KeyMaker,
    Route,
    TenantObjects,
    body_for,
    fill,
    is_problem,
    make_objects,
    unfillable,
)

pytestmark = [pytest.mark.e2e]

TAG_A = f"tenant-a-{uuid.uuid4().hex[:8]}"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Headers that differ on every answer whatever the route does.
_VOLATILE_HEADERS = {"date", "x-request-id", "traceparent", "content-length"}


@pytest.fixture(scope="module")
def tenant_a(key_maker: KeyMaker) -> ApiKey:
    return key_maker.create(f"iso-a-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def tenant_b(key_maker: KeyMaker) -> ApiKey:
    return key_maker.create(f"iso-b-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def a_objects(gateway: httpx.Client, tenant_a: ApiKey, key_maker: KeyMaker) -> TenantObjects:
    return make_objects(gateway, tenant_a, key_maker, tag=TAG_A)


@pytest.fixture(scope="module")
def a_pending(gateway: httpx.Client, tenant_a: ApiKey) -> str:
    """A job B could still change if isolation failed: scheduled an hour out, so it can be
    cancelled (and holds no worker meanwhile)."""
    answer = gateway.post(
        "/v1/jobs",
        json={"task": "echo", "args": {}, "tags": [TAG_A], "run_at": "2999-01-01T00:00:00Z"},
        headers=tenant_a.headers,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "SCHEDULED"
    job_id: str = answer.json()["id"]
    return job_id


def _object_routes(routes: list[Route]) -> list[Route]:
    return [route for route in routes if route.params]


def _variants(objects: TenantObjects, pending: str) -> list[TenantObjects]:
    # Every job route is tried on a job that succeeded, one that can still be cancelled and one
    # that failed (which retry would start again).
    return [
        objects,
        dataclasses.replace(objects, job=pending),
        dataclasses.replace(objects, job=objects.dead_letter),
    ]


def _shape(answer: httpx.Response, ids: set[str]) -> dict[str, Any]:
    """What a caller can observe, with the ids it asked about blanked out."""
    text = answer.text
    for value in ids:
        text = text.replace(value, "<id>")
    return {
        "status": answer.status_code,
        "content-type": answer.headers.get("content-type"),
        "headers": sorted(set(answer.headers) - _VOLATILE_HEADERS),
        "body": _UUID.sub("<uuid>", re.sub(r'"request_id":\s*"[^"]*"', "", text)),
    }


def _snapshot(
    gateway: httpx.Client, routes: list[Route], variants: list[TenantObjects], owner: ApiKey
) -> dict[str, Any]:
    """Everything A reads about its own objects (a scheduled job's result is a 409 problem)."""
    seen: dict[str, Any] = {}
    for objects in variants:
        for route in _object_routes(routes):
            if route.method == "GET":
                path = fill(route, objects)
                answer = gateway.get(path, headers=owner.headers)
                assert answer.status_code in (200, 409), f"A reads {path}: {answer.text}"
                body = answer.json()
                body.pop("request_id", None)
                seen[path] = (answer.status_code, body)
    return seen


def test_every_object_route_can_be_filled(routes: list[Route]) -> None:
    assert unfillable(routes) == []


def test_another_tenants_ids_answer_like_missing_ones_and_change_nothing(
    gateway: httpx.Client,
    routes: list[Route],
    tenant_a: ApiKey,
    tenant_b: ApiKey,
    a_objects: TenantObjects,
    a_pending: str,
) -> None:
    variants = _variants(a_objects, a_pending)
    before = _snapshot(gateway, routes, variants, tenant_a)
    assert before, "no object route to read"

    different: list[str] = []
    for objects in variants:
        missing = TenantObjects(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))
        for route in _object_routes(routes):
            a_ids = {str(v) for v in dataclasses.asdict(objects).values()}
            unknown_ids = {str(v) for v in dataclasses.asdict(missing).values()}
            on_a = gateway.request(
                route.method,
                fill(route, objects),
                json=body_for(route),
                headers=tenant_b.headers,
            )
            on_unknown = gateway.request(
                route.method,
                fill(route, missing),
                json=body_for(route),
                headers=tenant_b.headers,
            )
            if not is_problem(on_a, 404):
                different.append(f"{route} on A's id: {on_a.status_code} {on_a.text[:200]}")
            elif _shape(on_a, a_ids) != _shape(on_unknown, unknown_ids):
                different.append(
                    f"{route}: A's id {_shape(on_a, a_ids)} vs unknown "
                    f"{_shape(on_unknown, unknown_ids)}"
                )
    assert different == [], "\n".join(different)

    assert _snapshot(gateway, routes, variants, tenant_a) == before
    # A's own credential and the key B tried to revoke or rotate both still work.
    assert gateway.get("/v1/jobs", headers=tenant_a.headers).status_code == 200


def test_list_and_bulk_routes_never_show_or_touch_another_tenants_objects(
    gateway: httpx.Client,
    routes: list[Route],
    tenant_a: ApiKey,
    tenant_b: ApiKey,
    a_objects: TenantObjects,
    a_pending: str,
) -> None:
    variants = _variants(a_objects, a_pending)
    before = _snapshot(gateway, routes, variants, tenant_a)
    markers = {TAG_A, a_pending, *(str(v) for v in dataclasses.asdict(a_objects).values())}
    collection_routes = [route for route in routes if not route.params]
    assert collection_routes

    leaked: list[str] = []
    for route in collection_routes:
        # Bulk routes are given A's ids (dead-letter replay and purge by id); their answer may
        # name what B sent, nothing more.
        body = body_for(route, a_objects)
        sent = set(body.get("ids", [])) if isinstance(body, dict) else set()
        answer = gateway.request(route.method, route.path, json=body, headers=tenant_b.headers)
        assert answer.status_code < 500, f"{route}: {answer.text}"
        leaked += [f"{route} shows {m}" for m in markers - sent if m in answer.text]
        if route.method == "GET":
            # The control: A's own answer on the same route does show A's objects where the
            # route lists them, so the search above is looking in the right place.
            own = gateway.get(route.path, headers=tenant_a.headers).text
            assert route.path == "/v1/tasks" or any(m in own for m in markers), route
        elif route.path == "/v1/dead-letters/replay":
            assert answer.json() == {"replayed": [], "not_found": [a_objects.dead_letter]}
        elif route.path == "/v1/dead-letters/purge":
            assert answer.json() == {"purged": 0}

    # The filters of the jobs list, aimed at A's marks.
    filtered = gateway.get("/v1/jobs", params={"tag": TAG_A}, headers=tenant_b.headers)
    assert filtered.status_code == 200
    assert filtered.json()["items"] == []
    # Purging "everything" purges only B's own.
    purge = gateway.post("/v1/dead-letters/purge", json={"filter": {}}, headers=tenant_b.headers)
    assert purge.status_code == 200, purge.text

    assert leaked == [], "\n".join(leaked)
    assert _snapshot(gateway, routes, variants, tenant_a) == before
