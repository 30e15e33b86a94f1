"""The asyncio SDK client: the same methods as `Client`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from conveyor_client import _protocol as p
from conveyor_client.errors import ConveyorAPIError, ConveyorConnectionError, ConveyorTimeout


class AsyncClient:
    """`AsyncClient()` reads `CONVEYOR_GATEWAY_URL` and `CONVEYOR_API_KEY`; arguments win."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = p.DEFAULT_TIMEOUT,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=p.resolve_base_url(base_url),
            headers=p.default_headers(p.resolve_api_key(api_key)),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConveyorConnectionError(f"{method} {path}: {exc!r}") from exc
        return p.answer(response)

    async def submit(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Submits one job; `options` are `JobCreate` fields (`queue`, `priority`, `run_at`,
        `max_attempts`, `timeout_seconds`, `tags`, `metadata`). Returns the accepted job."""
        result: dict[str, Any] = await self._request(
            "POST",
            "/v1/jobs",
            content=p.encode(p.job_body(task, args, options)),
            headers=p.submit_headers(idempotency_key),
        )
        return result

    async def submit_batch(self, jobs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Submits up to 1,000 jobs (each a `JobCreate` dict) in one transaction."""
        result: dict[str, Any] = await self._request(
            "POST",
            "/v1/jobs/batch",
            content=p.encode(p.batch_body(jobs)),
            headers=p.submit_headers(None),
        )
        return result

    async def get(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", f"/v1/jobs/{job_id}")
        return result

    async def list_page(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page: `{"items": [...], "next_cursor": ...}`."""
        params = p.list_params(
            status=status, task=task, queue=queue, created_after=created_after,
            created_before=created_before, page_size=page_size, cursor=cursor,
        )  # fmt: skip
        result: dict[str, Any] = await self._request("GET", "/v1/jobs", params=params)
        return result

    async def list(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching job, newest first, fetching pages as the iteration needs them."""
        cursor: str | None = None
        while True:
            page = await self.list_page(
                status=status, task=task, queue=queue, created_after=created_after,
                created_before=created_before, page_size=page_size, cursor=cursor,
            )  # fmt: skip
            for item in page["items"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def result(self, job_id: str) -> Any:
        """The value a succeeded job returned. A job that has not succeeded raises
        `ConveyorAPIError` (`job-not-finished`, `job-failed`, `job-cancelled`,
        `result-expired`)."""
        return (await self._request("GET", f"/v1/jobs/{job_id}/result"))["result"]

    async def wait(
        self, job_id: str, timeout: float = 60.0, poll_interval: float = 0.5
    ) -> dict[str, Any]:
        """Polls until the job is SUCCEEDED, FAILED or CANCELLED and returns it; a moment of
        unavailability (502/503/504, no connection) is polled through, not raised."""
        deadline = time.monotonic() + timeout
        status: str | None = None
        while True:
            try:
                job = await self.get(job_id)
                status = job["status"]
                if status in p.FINAL_STATUSES:
                    return job
            except ConveyorAPIError as exc:
                if exc.status not in p.TRANSIENT_STATUSES:
                    raise
            except ConveyorConnectionError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConveyorTimeout(job_id, status, timeout)
            await asyncio.sleep(min(poll_interval, remaining))

    async def tasks(self) -> dict[str, Any]:
        """The task catalog: `{"tasks": [{"name", "description", "input_schema", ...}]}`."""
        result: dict[str, Any] = await self._request("GET", "/v1/tasks")
        return result
