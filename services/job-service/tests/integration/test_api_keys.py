"""API keys: created by the CLI function, verified over the internal route."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from job_service.__main__ import create_api_key, revoke_api_key
from job_service.models import ApiKey


async def _verify(h: Any, key: str) -> Any:
    return await h.client.post("/internal/v1/auth/verify", json={"key": key})


async def test_create_verify_and_revoke(quiet_harness: Any) -> None:
    h = quiet_harness
    key = await create_api_key(h.settings, "acme", "ci", ["jobs:read", "jobs:write"])

    prefix, secret = key.split("_")[1], key.split("_", 2)[2]
    assert key.startswith("cvk_")
    assert 8 <= len(prefix) <= 12
    assert len(secret) >= 43
    async with h.session() as session:
        row = (await session.execute(select(ApiKey))).scalar_one()
    assert row.prefix == prefix
    assert secret not in row.secret_hash
    assert key not in repr(row.__dict__)

    ok = await _verify(h, key)
    assert ok.status_code == 200
    assert ok.json() == {
        "tenant_id": "acme",
        "scopes": ["jobs:read", "jobs:write"],
        "key_id": str(row.id),
        "expires_at": None,
    }

    wrong = await _verify(h, f"cvk_{prefix}_{'A' * len(secret)}")
    unknown_prefix = await _verify(h, f"cvk_zzzzzzzzzz_{secret}")
    garbage = await _verify(h, "not-a-key")
    for response in (wrong, unknown_prefix, garbage):
        assert response.status_code == 401
        assert response.json()["type"] == "urn:conveyor:problem:unauthorized"
        assert secret not in response.text

    await revoke_api_key(h.settings, row.id)
    revoked = await _verify(h, key)
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == wrong.json()["detail"]


async def test_default_scopes_and_distinct_keys(quiet_harness: Any) -> None:
    h = quiet_harness
    first = await create_api_key(h.settings, "acme", "one")
    second = await create_api_key(h.settings, "globex", "two")

    assert first != second
    body = (await _verify(h, second)).json()
    assert body["tenant_id"] == "globex"
    assert body["scopes"] == ["jobs:manage", "jobs:read", "jobs:write"]
    assert uuid.UUID(body["key_id"])
