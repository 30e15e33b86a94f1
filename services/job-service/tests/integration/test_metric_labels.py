"""What `/metrics` may carry: queue labels are capped (clients name queues), and no tenant id
or job argument ever becomes a label or a value."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_common import metrics
from conveyor_common.settings import TENANT_HEADER


def _series(payload: str, name: str) -> list[str]:
    return [line for line in payload.splitlines() if line.startswith(name + "{")]


async def test_queues_past_the_cap_are_counted_as_other(
    quiet_harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = quiet_harness
    monkeypatch.setattr(metrics, "queue_label", metrics.BoundedLabel(3, metrics.OTHER_QUEUE))
    queues = [f"labels-test-{i}" for i in range(6)]
    for queue in queues:
        response = await h.submit({"task": "noop", "args": {}, "queue": queue})
        assert response.status_code == 202, response.text
    await h.app.state.gauges.collect_once()

    payload = (await h.client.get("/metrics")).text
    submitted = _series(payload, "conveyor_jobs_submitted_total")
    named = {q for q in queues if any(f'queue="{q}"' in line for line in submitted)}
    assert named == set(queues[:3])
    other = [line for line in submitted if f'queue="{metrics.OTHER_QUEUE}"' in line]
    assert other
    assert float(other[0].rsplit(" ", 1)[1]) >= 3
    backlog = _series(payload, "conveyor_jobs_backlog")
    assert not any(f'queue="{q}"' in line for q in queues[3:] for line in backlog)
    assert any(f'queue="{metrics.OTHER_QUEUE}",status="PENDING"' in line for line in backlog)


async def test_tenants_and_arguments_never_reach_metrics(quiet_harness: Any) -> None:
    h = quiet_harness
    tenant, secret = "tenant-canary-7f3a", "argument-canary-91c2"
    response = await h.client.post(
        "/internal/v1/jobs",
        json={"task": "noop", "args": {"token": secret, "note": secret}},
        headers={TENANT_HEADER: tenant},
    )
    assert response.status_code == 202, response.text
    assert (
        await h.client.get(
            f"/internal/v1/jobs/{response.json()['id']}", headers={TENANT_HEADER: tenant}
        )
    ).status_code == 200
    await h.app.state.gauges.collect_once()

    payload = (await h.client.get("/metrics")).text
    assert "conveyor_jobs_submitted_total" in payload
    assert tenant not in payload
    assert secret not in payload
