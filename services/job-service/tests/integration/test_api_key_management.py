"""Managing API keys over `/internal/v1/api-keys` (what the gateway's `/v1/api-keys` calls):
create (the secret once), list, read, revoke, rotate with an overlap window; tenant-scoped; on
both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor_common.api_keys import MAX_ROTATION_OVERLAP_SECONDS
from conveyor_common.problems import Unauthorized
from conveyor_common.settings import TENANT_HEADER
from job_service.api_keys.service import ApiKeyService
from job_service.models import ApiKey

URL = "/internal/v1/api-keys"
VERIFY = "/internal/v1/auth/verify"
GLOBEX = {TENANT_HEADER: "globex"}


async def _create(
    h: Any, name: str = "ci", headers: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"name": name, "scopes": ["jobs:read", "jobs:write"], **fields}
    response = await h.client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _verify(h: Any, key: str) -> int:
    response = await h.client.post(VERIFY, json={"key": key})
    return int(response.status_code)


def _near(moment: str, expected: datetime, slack: float = 10.0) -> bool:
    return abs((datetime.fromisoformat(moment) - expected).total_seconds()) < slack


async def test_create_then_list_and_read_never_show_the_secret(quiet_harness: Any) -> None:
    h = quiet_harness
    response = await h.client.post(URL, json={"name": "billing-ci", "scopes": ["jobs:read"]})

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{URL}/{created['id']}"
    assert response.headers["cache-control"] == "no-store"
    key = created["key"]
    secret = key.split("_", 2)[2]
    assert key.startswith(f"cvk_{created['prefix']}_")
    assert created["status"] == "active"
    assert (created["name"], created["scopes"]) == ("billing-ci", ["jobs:read"])
    assert created["expires_at"] is None
    assert created["revoked_at"] is None
    assert created["rotated_from"] is None

    verified = await h.client.post(VERIFY, json={"key": key})
    assert verified.status_code == 200
    assert verified.json()["key_id"] == created["id"]
    assert verified.json()["tenant_id"] == "acme"

    listed = await h.client.get(URL)
    one = await h.client.get(f"{URL}/{created['id']}")
    assert listed.status_code == one.status_code == 200
    [item] = listed.json()["items"]
    assert item == one.json()
    assert item == {k: v for k, v in created.items() if k != "key"}
    for answer in (listed, one):
        assert secret not in answer.text
        assert "secret_hash" not in answer.text
    async with h.session() as session:
        row = await session.get(ApiKey, uuid.UUID(created["id"]))
    assert row is not None
    assert secret not in row.secret_hash


async def test_list_pages_newest_first_and_shows_only_the_tenants_keys(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    ids = [(await _create(h, f"k{i}"))["id"] for i in range(3)]
    theirs = await _create(h, "theirs", headers=GLOBEX)

    first = (await h.client.get(URL, params={"limit": 2})).json()
    second = (await h.client.get(URL, params={"limit": 2, "cursor": first["next_cursor"]})).json()

    assert [k["id"] for k in first["items"]] == [ids[2], ids[1]]
    assert [k["id"] for k in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    assert [k["id"] for k in (await h.client.get(URL, headers=GLOBEX)).json()["items"]] == [
        theirs["id"]
    ]
    bad = await h.client.get(URL, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.cursor"


async def test_another_tenants_key_answers_like_a_missing_one_and_is_untouched(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    theirs = await _create(h, "theirs", headers=GLOBEX)
    missing = str(uuid.uuid4())

    for key_id in (theirs["id"], missing):
        answers = [
            await h.client.get(f"{URL}/{key_id}"),
            await h.client.post(f"{URL}/{key_id}/revoke"),
            await h.client.post(f"{URL}/{key_id}/rotate", json={"overlap_seconds": 0}),
        ]
        for answer in answers:
            assert answer.status_code == 404, answer.text
            assert answer.json()["type"] == "urn:conveyor:problem:api-key-not-found"
            assert answer.json()["extra"] == {"key_id": key_id}

    assert await _verify(h, theirs["key"]) == 200
    still = (await h.client.get(f"{URL}/{theirs['id']}", headers=GLOBEX)).json()
    assert still == {k: v for k, v in theirs.items() if k != "key"}
    assert len((await h.client.get(URL, headers=GLOBEX)).json()["items"]) == 1


async def test_revoke_takes_effect_at_once_and_is_idempotent(quiet_harness: Any) -> None:
    h = quiet_harness
    created = await _create(h)
    assert await _verify(h, created["key"]) == 200

    revoked = await h.client.post(f"{URL}/{created['id']}/revoke")
    again = await h.client.post(f"{URL}/{created['id']}/revoke")

    assert revoked.status_code == again.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert _near(revoked.json()["revoked_at"], datetime.now(UTC))
    assert again.json() == revoked.json()
    assert await _verify(h, created["key"]) == 401


async def test_rotation_keeps_both_keys_valid_within_the_overlap(quiet_harness: Any) -> None:
    h = quiet_harness
    old = await _create(h, "deploy", scopes=["admin", "jobs:read"])

    response = await h.client.post(f"{URL}/{old['id']}/rotate", json={"overlap_seconds": 3600})

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    rotation = response.json()
    new, previous = rotation["created"], rotation["previous"]
    assert response.headers["location"] == f"{URL}/{new['id']}"
    assert (new["name"], new["scopes"], new["rotated_from"]) == (
        "deploy", ["admin", "jobs:read"], old["id"],
    )  # fmt: skip
    assert new["key"] != old["key"]
    assert new["expires_at"] is None
    assert previous["id"] == old["id"]
    assert previous["status"] == "active"
    assert _near(previous["expires_at"], datetime.now(UTC) + timedelta(hours=1))

    assert await _verify(h, old["key"]) == 200
    answer = await h.client.post(VERIFY, json={"key": new["key"]})
    assert answer.json()["tenant_id"] == "acme"
    assert answer.json()["scopes"] == ["admin", "jobs:read"]
    assert (await h.client.post(VERIFY, json={"key": old["key"]})).json()["expires_at"]

    # A key is rotated once; its replacement is what rotates next.
    twice = await h.client.post(f"{URL}/{old['id']}/rotate", json={"overlap_seconds": 0})
    assert twice.status_code == 409
    assert twice.json()["type"] == "urn:conveyor:problem:api-key-not-rotatable"
    assert twice.json()["extra"] == {"replaced_by": new["id"]}
    onward = await h.client.post(f"{URL}/{new['id']}/rotate")
    assert onward.status_code == 201
    assert onward.json()["created"]["rotated_from"] == new["id"]


async def test_rotation_with_no_overlap_ends_the_old_key_now(quiet_harness: Any) -> None:
    h = quiet_harness
    old = await _create(h)

    rotation = (
        await h.client.post(f"{URL}/{old['id']}/rotate", json={"overlap_seconds": 0})
    ).json()

    assert rotation["previous"]["status"] == "expired"
    assert await _verify(h, old["key"]) == 401
    assert await _verify(h, rotation["created"]["key"]) == 200


async def test_default_overlap_comes_from_the_settings(harness_factory: Any) -> None:
    async with harness_factory(background_tasks=False, api_key_rotation_overlap_seconds=120) as h:
        old = await _create(h)
        no_body = await h.client.post(f"{URL}/{old['id']}/rotate")
        newer = no_body.json()["created"]
        empty_body = await h.client.post(f"{URL}/{newer['id']}/rotate", json={})

    assert no_body.status_code == empty_body.status_code == 201
    in_two_minutes = datetime.now(UTC) + timedelta(seconds=120)
    assert _near(no_body.json()["previous"]["expires_at"], in_two_minutes)
    assert _near(empty_body.json()["previous"]["expires_at"], in_two_minutes)


async def test_rotation_never_extends_a_key(quiet_harness: Any) -> None:
    h = quiet_harness
    ends = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    old = await _create(h, expires_at=ends.isoformat())

    rotation = (
        await h.client.post(f"{URL}/{old['id']}/rotate", json={"overlap_seconds": 86_400})
    ).json()

    assert datetime.fromisoformat(rotation["previous"]["expires_at"]) == ends
    assert datetime.fromisoformat(rotation["created"]["expires_at"]) == ends


async def test_overlap_ends_exactly_when_it_says(quiet_harness: Any) -> None:
    h = quiet_harness
    start = datetime.now(UTC)
    async with h.session() as session, session.begin():
        service = ApiKeyService(session, clock=lambda: start)
        old = await service.create("acme", "ci", ["jobs:read"])
        rotation = await service.rotate(old.id, overlap_seconds=600, tenant_id="acme")

    async def valid_at(moment: datetime, key: str) -> bool:
        async with h.session() as session:
            try:
                await ApiKeyService(session, clock=lambda: moment).verify(key)
            except Unauthorized:
                return False
            return True

    assert rotation.previous.expires_at == start + timedelta(seconds=600)
    assert await valid_at(start + timedelta(seconds=599), old.key)
    assert not await valid_at(start + timedelta(seconds=600), old.key)
    assert await valid_at(start + timedelta(days=365), rotation.created.key)


async def test_revoked_or_expired_keys_cannot_be_rotated(quiet_harness: Any) -> None:
    h = quiet_harness
    revoked = await _create(h, "revoked")
    await h.client.post(f"{URL}/{revoked['id']}/revoke")
    expired = await _create(h, "expired")
    await h.client.post(f"{URL}/{expired['id']}/rotate", json={"overlap_seconds": 0})

    for key_id, status in ((revoked["id"], "revoked"), (expired["id"], "expired")):
        answer = await h.client.post(f"{URL}/{key_id}/rotate")
        assert answer.status_code == 409
        assert answer.json()["extra"]["status"] == status


BAD_INPUT = [
    ("POST", "", {"name": "", "scopes": ["jobs:read"]}, "body.name"),
    ("POST", "", {"name": "x" * 201, "scopes": ["jobs:read"]}, "body.name"),
    ("POST", "", {"name": "ci", "scopes": ["root"]}, "body.scopes.0"),
    ("POST", "", {"name": "ci", "scopes": []}, "body.scopes"),
    ("POST", "", {"name": "ci"}, "body.scopes"),
    ("POST", "", {"name": "ci", "scopes": ["admin"], "tenant_id": "globex"}, "body.tenant_id"),
    ("POST", "", {"name": "ci", "scopes": ["admin"], "expires_at": "2020-01-01T00:00:00Z"},
     "body.expires_at"),
    ("POST", "", {"name": "ci", "scopes": ["admin"], "expires_at": "2999-01-01T00:00:00"},
     "body.expires_at"),
    ("POST", "/{id}/rotate", {"overlap_seconds": -1}, "body.overlap_seconds"),
    ("POST", "/{id}/rotate", {"overlap_seconds": MAX_ROTATION_OVERLAP_SECONDS + 1},
     "body.overlap_seconds"),
    ("GET", "/not-a-uuid", None, "path.key_id"),
]  # fmt: skip


async def test_bad_input_is_a_problem_naming_the_field_and_changes_nothing(
    quiet_harness: Any,
) -> None:
    h = quiet_harness
    created = await _create(h)

    for method, path, body, field in BAD_INPUT:
        url = URL + path.replace("{id}", created["id"])
        response = await h.client.request(method, url, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [error["field"] for error in response.json()["errors"]], (body, field)

    assert len((await h.client.get(URL)).json()["items"]) == 1
    assert await _verify(h, created["key"]) == 200


async def test_concurrent_rotations_of_one_key_make_one_replacement(quiet_harness: Any) -> None:
    h = quiet_harness
    old = await _create(h)

    answers = await asyncio.gather(
        *(
            h.client.post(f"{URL}/{old['id']}/rotate", json={"overlap_seconds": 60})
            for _ in range(4)
        )
    )

    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert len((await h.client.get(URL)).json()["items"]) == 2
