"""Helpers for tests that talk to a running stack through its public API."""

from __future__ import annotations

import time
from typing import Any

import httpx

from conveyor_common.statuses import FINAL_STATUSES


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_final(
    client: httpx.Client, job_id: str, key: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=auth(key)).json()
        if job["status"] in FINAL_STATUSES:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not final after {timeout}s: {job}")
        time.sleep(0.1)


def wait_all_final(
    client: httpx.Client, job_ids: list[str], key: str, *, timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """Polls the job list (newest first) until every id is final; returns id -> job."""
    wanted = set(job_ids)
    deadline = time.monotonic() + timeout
    while True:
        seen: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/jobs", params=params, headers=auth(key)).json()
            for job in page["items"]:
                if job["id"] in wanted:
                    seen[job["id"]] = job
            cursor = page["next_cursor"]
            if not cursor:
                break
        if len(seen) == len(wanted) and all(j["status"] in FINAL_STATUSES for j in seen.values()):
            return seen
        if time.monotonic() > deadline:
            pending = {i: seen.get(i, {}).get("status") for i in wanted}
            not_final = {i: s for i, s in pending.items() if s not in FINAL_STATUSES}
            raise AssertionError(f"{len(not_final)} jobs not final after {timeout}s: {not_final}")
        time.sleep(0.2)


def wait_status(
    client: httpx.Client, job_id: str, status: str, *, timeout: float = 30.0
) -> dict[str, Any]:
    """Polls one job (the client carries its own auth) until it has `status`."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == status:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never {status} in {timeout}s: {job}")
        time.sleep(0.05)
