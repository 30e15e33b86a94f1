"""A small stand-in for the public `/v1` API (the real one is tested in api-gateway): enough to
exercise every SDK method and the CLI. AsyncClient tests call it in-process through
httpx.ASGITransport; the sync client and the CLI reach it through a real uvicorn in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from conveyor_testing.ports import free_port

API_KEY = "cvk_client_" + "k" * 43
PROBLEM = "application/problem+json"


@dataclass
class ApiState:
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def reset(self) -> None:
        self.jobs.clear()
        self.order.clear()
        self.polls.clear()
        self.requests.clear()


def problem(status: int, slug: str, detail: str, **members: Any) -> JSONResponse:
    body = {"type": f"urn:conveyor:problem:{slug}", "title": slug, "status": status,
            "detail": detail, "request_id": "req-fake", **members}  # fmt: skip
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def new_job(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "task": body["task"],
        "status": "PENDING",
        "queue": body.get("queue") or "default",
        "priority": body.get("priority", 0),
        "args": body.get("args", {}),
        "attempts": 0,
        "max_attempts": 3,
        "timeout_seconds": 300,
        "tags": body.get("tags", []),
        "metadata": {},
        "idempotency_key": None,
        "error": None,
        "created_at": datetime.now(UTC).isoformat(),
    }


def build_api(state: ApiState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        state.requests.append(
            (request.method, request.url.path, dict(request.headers), await request.body())
        )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            response = problem(401, "unauthorized", "Missing or invalid credentials")
            response.headers["WWW-Authenticate"] = 'Bearer realm="conveyor"'
            return response
        answer: Response = await call_next(request)
        return answer

    def store(body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        job = new_job(body)
        job["idempotency_key"] = idempotency_key
        state.jobs[job["id"]] = job
        state.order.insert(0, job["id"])
        return job

    @app.post("/v1/jobs")
    async def submit(request: Request) -> Response:
        body = await request.json()
        if body["task"] == "reject":
            return problem(422, "validation-error", "body.priority: too big",
                           errors=[{"field": "body.priority", "reason": "too big"}])  # fmt: skip
        if body["task"] == "crash":
            return PlainTextResponse("Internal Server Error", status_code=500)
        job = store(body, request.headers.get("idempotency-key"))
        return JSONResponse(job, status_code=202, headers={"Location": f"/v1/jobs/{job['id']}"})

    @app.post("/v1/jobs/batch")
    async def batch(request: Request) -> Response:
        jobs = [store(j) for j in (await request.json())["jobs"]]
        return JSONResponse({"jobs": jobs}, status_code=202)

    @app.get("/v1/jobs/{job_id}")
    async def get(job_id: str) -> Response:
        job = state.jobs.get(job_id)
        if job is None:
            return problem(404, "job-not-found", "No such job.")
        polls = state.polls[job_id] = state.polls.get(job_id, 0) + 1
        task = job["task"]
        if task == "flaky" and polls == 1:
            return problem(503, "service-unavailable", "try again", extra=None)
        if task != "never" and polls >= 2:
            job["status"] = "RUNNING"
        if task != "never" and polls >= 3:
            job["status"] = "FAILED" if task == "fail" else "SUCCEEDED"
            if task == "fail":
                job["error"] = {"type": "ValueError", "message": "boom"}
        return JSONResponse(job)

    @app.get("/v1/jobs")
    async def listing(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "50"))
        start = int(request.query_params.get("cursor", "0"))
        status = request.query_params.get("status")
        ids = [i for i in state.order if status is None or state.jobs[i]["status"] == status]
        page = ids[start : start + limit]
        next_cursor = str(start + limit) if start + limit < len(ids) else None
        return JSONResponse({"items": [state.jobs[i] for i in page], "next_cursor": next_cursor})

    @app.get("/v1/jobs/{job_id}/result")
    async def result(job_id: str) -> Response:
        job = state.jobs.get(job_id)
        if job is None:
            return problem(404, "job-not-found", "No such job.")
        if job["status"] == "FAILED":
            return problem(409, "job-failed", "The job failed.", extra={"error": job["error"]})
        if job["status"] != "SUCCEEDED":
            return problem(409, "job-not-finished", "Not yet.", extra={"status": job["status"]})
        return JSONResponse({"job_id": job_id, "result": {"echo": job["args"]}})

    @app.get("/v1/tasks")
    async def tasks() -> Response:
        return JSONResponse({"tasks": [{"name": "echo", "description": "", "input_schema": {}}]})

    return app


@pytest.fixture(scope="session")
def api_state() -> ApiState:
    return ApiState()


@pytest.fixture
def api(api_state: ApiState) -> ApiState:
    api_state.reset()
    return api_state


@pytest.fixture
def api_app(api_state: ApiState) -> FastAPI:
    return build_api(api_state)


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="session")
def served_api(api_state: ApiState) -> Iterator[str]:
    """The stand-in API on a real uvicorn, for the sync client and the CLI."""
    port = free_port()
    config = uvicorn.Config(build_api(api_state), host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="off", ws="none", http="h11",
                            loop="asyncio", timeout_graceful_shutdown=1)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the fake API exited"
        assert time.monotonic() < deadline, "the fake API did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
