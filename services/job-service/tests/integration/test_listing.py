"""Listing: tenant-scoped, newest first, keyset pages with an opaque cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any


async def _walk(h: Any, **params: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await h.client.get("/internal/v1/jobs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        ids.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 100


async def test_keyset_pages_walk_everything_once_newest_first(quiet_harness: Any) -> None:
    h = quiet_harness
    batch = [{"task": "noop", "args": {"i": i}} for i in range(23)]
    created = (await h.client.post("/internal/v1/jobs/batch", json={"jobs": batch})).json()["jobs"]
    more = [(await h.submit({"task": "echo", "args": {"x": i}})).json() for i in range(4)]
    expected = sorted([j["id"] for j in created + more], reverse=True)

    ids, pages = await _walk(h, limit=5)

    assert ids == expected  # newest first, no duplicates, nothing missing
    assert pages == 6

    page = (await h.client.get("/internal/v1/jobs", params={"limit": 4})).json()
    assert [j["id"] for j in page["items"]] == [j["id"] for j in reversed(more)]


async def test_listing_never_shows_another_tenants_jobs(quiet_harness: Any) -> None:
    h = quiet_harness
    mine = (await h.submit({"task": "noop"})).json()
    theirs = (await h.submit({"task": "noop"}, headers={"X-Conveyor-Tenant": "globex"})).json()

    ids, _ = await _walk(h)
    other_ids, _ = await _walk(h)  # same tenant twice: stable

    assert ids == other_ids == [mine["id"]]
    response = await h.client.get("/internal/v1/jobs", headers={"X-Conveyor-Tenant": "globex"})
    assert [j["id"] for j in response.json()["items"]] == [theirs["id"]]
    empty = await h.client.get("/internal/v1/jobs", headers={"X-Conveyor-Tenant": "initech"})
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_filters(quiet_harness: Any) -> None:
    h = quiet_harness
    echo = [(await h.submit({"task": "echo", "args": {"x": i}})).json() for i in range(3)]
    report = (await h.submit({"task": "reports.build"})).json()
    await h.app.state.relay.publish_once()  # everything QUEUED
    pending = (await h.submit({"task": "noop"})).json()

    async def ids(**params: Any) -> set[str]:
        return set((await _walk(h, **params))[0])

    assert await ids(task="echo") == {j["id"] for j in echo}
    assert await ids(queue="reports") == {report["id"]}
    assert await ids(status="PENDING") == {pending["id"]}
    assert await ids(status="QUEUED", task="echo", limit=2) == {j["id"] for j in echo}
    middle = datetime.fromisoformat(echo[1]["created_at"])
    after = await ids(created_after=middle.isoformat())
    assert echo[0]["id"] not in after
    assert echo[1]["id"] not in after
    assert {echo[2]["id"], report["id"], pending["id"]} <= after
    assert await ids(created_before=middle.isoformat()) == {echo[0]["id"]}


async def test_the_tag_filter_matches_whole_tags_and_pages(quiet_harness: Any) -> None:
    h = quiet_harness
    billing = [
        (await h.submit({"task": "noop", "tags": ["billing", f"run-{i}"]})).json()["id"]
        for i in range(5)
    ]
    await h.submit({"task": "noop", "tags": ["bill", "billing-eu"]})
    await h.submit({"task": "noop"})
    await h.submit({"task": "noop", "tags": ['"billing"']})

    ids, pages = await _walk(h, tag="billing", limit=2)

    assert ids == list(reversed(billing))
    assert pages == 3
    only = await h.client.get("/internal/v1/jobs", params={"tag": "run-3"})
    assert [j["id"] for j in only.json()["items"]] == [billing[3]]
    combined = await h.client.get(
        "/internal/v1/jobs", params={"tag": "billing", "status": "RUNNING"}
    )
    assert combined.json()["items"] == []
    assert (await h.client.get("/internal/v1/jobs", params={"tag": ""})).status_code == 422
