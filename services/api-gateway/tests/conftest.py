"""The gateway under test runs in-process (httpx.ASGITransport, lifespan running); job-service
and result-service are played by a small FastAPI double of their internal contract, served by
a real uvicorn on a free port so connection refusals and timeouts are real."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api_gateway.app import create_app
from api_gateway.config import Settings
from conveyor_common.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX
from conveyor_common.settings import INTERNAL_TOKEN_HEADER, TENANT_HEADER
from conveyor_testing.ports import free_port

INTERNAL_TOKEN = "gateway-test-internal-token"
WRITE_KEY = "cvk_write1_" + "w" * 43
READ_KEY = "cvk_read01_" + "r" * 43
FULL_KEY = "cvk_full01_" + "f" * 43
OTHER_TENANT_KEY = "cvk_other1_" + "o" * 43
OTHER_WRITER_KEY = "cvk_otherw_" + "g" * 43
MANAGE_KEY = "cvk_manag1_" + "m" * 43
ADMIN_KEY = "cvk_admin1_" + "a" * 43
KEYS: dict[str, dict[str, Any]] = {
    WRITE_KEY: {"tenant_id": "acme", "scopes": ["jobs:write"], "key_id": "k-write"},
    READ_KEY: {"tenant_id": "acme", "scopes": ["jobs:read"], "key_id": "k-read"},
    FULL_KEY: {"tenant_id": "acme", "scopes": ["jobs:write", "jobs:read"], "key_id": "k-full"},
    OTHER_TENANT_KEY: {"tenant_id": "globex", "scopes": ["jobs:read"], "key_id": "k-other"},
    OTHER_WRITER_KEY: {"tenant_id": "globex", "scopes": ["jobs:write"], "key_id": "k-otherw"},
    MANAGE_KEY: {"tenant_id": "acme", "scopes": ["jobs:read", "jobs:manage"], "key_id": "k-man"},
    ADMIN_KEY: {"tenant_id": "acme", "scopes": ["admin"], "key_id": "k-admin"},
}
CATALOG = {
    "tasks": [
        {
            "name": "echo",
            "description": "Returns its arguments.",
            "input_schema": {"type": "object"},
            "defaults": {"queue": "default", "timeout_seconds": 300, "max_attempts": 3},
        }
    ]
}


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    params: dict[str, str]
    body: bytes


@dataclass
class DoubleState:
    """What the double answers and what it was asked; reset before every test."""

    calls: list[Call] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> JobRead JSON
    owners: dict[str, str] = field(default_factory=dict)  # id -> tenant
    results: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=dict)
    delay_seconds: float = 0.0  # applied to every route but auth/verify and /healthz
    verify_delay_seconds: float = 0.0  # applied to auth/verify only
    healthz_status: int = 200
    # Refuse the internal token on every route but auth/verify (a rotated token, say).
    refuse_token_on_data_routes: bool = False
    # The token the double expects from the gateway.
    internal_token: str = INTERNAL_TOKEN
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> JobEventRead
    # id -> what a DeadLetterRead adds to the job (traceback, failed_at, history)
    dead_letters: dict[str, dict[str, Any]] = field(default_factory=dict)
    # id -> a key made through /internal/v1/api-keys: its fields and the tenant and key itself
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reset(self) -> None:
        self.calls.clear()
        self.jobs.clear()
        self.owners.clear()
        self.results.clear()
        self.delay_seconds = 0.0
        self.verify_delay_seconds = 0.0
        self.healthz_status = 200
        self.refuse_token_on_data_routes = False
        self.internal_token = INTERNAL_TOKEN
        self.events.clear()
        self.dead_letters.clear()
        self.api_keys.clear()

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def submitted_jobs(self) -> list[dict[str, Any]]:
        """Every job sent by a single submit, alone or coalesced with others."""
        alone = [
            json.loads(c.body) for c in self.calls_to("/internal/v1/jobs") if c.method == "POST"
        ]
        each = [
            job
            for c in self.calls_to("/internal/v1/jobs/each")
            for job in json.loads(c.body)["jobs"]
        ]
        return alone + each

    def add_job(self, tenant: str, status: str = "QUEUED", **fields: Any) -> str:
        job = job_json("echo", {}, status=status, **fields)
        self.jobs[job["id"]] = job
        self.owners[job["id"]] = tenant
        return str(job["id"])

    def add_dead_letter(self, tenant: str, **fields: Any) -> str:
        """A job whose attempts are spent: FAILED, with its last error and history."""
        failed_at = datetime.now(UTC).isoformat()
        error = {"type": "TimeLimitExceeded", "message": "over 300 s"}
        values = {"attempts": 3, "error": error, "finished_at": failed_at, "dead_letter": True}
        job_id = self.add_job(tenant, status="FAILED", **{**values, **fields})
        history = [
            {"attempt": n, "cycle": 1, "type": "failed", "at": failed_at,
             "error_type": "TimeLimitExceeded", "error_message": "over 300 s"}
            for n in (1, 2, 3)
        ]  # fmt: skip
        self.events[job_id] = history
        self.dead_letters[job_id] = {
            "traceback": "Traceback (most recent call last): ...",
            "failed_at": failed_at,
            "history": history,
        }
        return job_id

    def add_api_key(
        self, tenant: str, scopes: list[str], *, expires_at: datetime | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A key as job-service stores it; the returned record holds the key itself."""
        prefix = secrets.token_hex(5)
        record = {
            "id": str(uuid.uuid4()),
            "name": "key",
            "prefix": prefix,
            "scopes": sorted(scopes),
            "created_at": datetime.now(UTC).isoformat(),
            "expires_at": expires_at.isoformat() if expires_at else None,
            "revoked_at": None,
            "rotated_from": None,
            "tenant": tenant,
            "key": f"cvk_{prefix}_{secrets.token_urlsafe(32)}",
            **fields,
        }
        self.api_keys[record["id"]] = record
        return record

    def api_key_status(self, key_id: str) -> str:
        record = self.api_keys[key_id]
        if record["revoked_at"]:
            return "revoked"
        expires_at = record["expires_at"]
        if expires_at and datetime.fromisoformat(expires_at) <= datetime.now(UTC):
            return "expired"
        return "active"

    def api_key_read(self, key_id: str) -> dict[str, Any]:
        record = self.api_keys[key_id]
        shown = {k: v for k, v in record.items() if k not in ("tenant", "key")}
        return {**shown, "status": self.api_key_status(key_id)}


def job_json(
    task: str, args: dict[str, Any], *, status: str = "PENDING", **fields: Any
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "task": task,
        "status": status,
        "queue": "default",
        "priority": 0,
        "args": args,
        "attempts": 0,
        "max_attempts": 3,
        "timeout_seconds": 300,
        "tags": [],
        "metadata": {},
        "idempotency_key": None,
        "error": None,
        "created_at": datetime.now(UTC).isoformat(),
    }
    job.update(fields)
    return job


def problem(status: int, slug: str, detail: str, **members: Any) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": slug.replace("-", " "),
        "status": status,
        "detail": detail,
        **members,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE)


def build_double(state: DoubleState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record_and_guard(request: Request, call_next: Any) -> Response:
        body = await request.body()
        state.calls.append(
            Call(
                request.method,
                request.url.path,
                dict(request.headers),
                dict(request.query_params),
                body,
            )
        )
        if request.url.path == "/healthz":
            return Response(status_code=state.healthz_status)
        refused = (
            state.refuse_token_on_data_routes and request.url.path != "/internal/v1/auth/verify"
        )
        if request.headers.get(INTERNAL_TOKEN_HEADER) != state.internal_token or refused:
            return problem(401, "unauthorized", "gateway only")
        if state.delay_seconds and request.url.path != "/internal/v1/auth/verify":
            await asyncio.sleep(state.delay_seconds)
        response: Response = await call_next(request)
        return response

    def tenant(request: Request) -> str:
        return request.headers[TENANT_HEADER]

    @app.post("/internal/v1/auth/verify")
    async def verify(request: Request) -> Response:
        key = (await request.json())["key"]
        await asyncio.sleep(state.verify_delay_seconds)
        if key in KEYS:
            return JSONResponse(KEYS[key])
        for key_id, record in state.api_keys.items():
            if record["key"] == key and state.api_key_status(key_id) == "active":
                return JSONResponse(
                    {"tenant_id": record["tenant"], "scopes": record["scopes"],
                     "key_id": key_id, "expires_at": record["expires_at"]}
                )  # fmt: skip
        return problem(401, "unauthorized", "unknown key")

    def answer_submit(body: dict[str, Any], request: Request) -> Response:
        task = body["task"]
        if task == "unknown-task":
            return problem(422, "unknown-task", "No such task.", extra={"known_tasks": ["echo"]})
        if task == "crash":
            return PlainTextResponse("Internal Server Error", status_code=500)
        if task == "garbage":
            return JSONResponse({"unexpected": True}, status_code=202)
        if task == "problem-500":
            return problem(500, "internal-error", "job-service broke")
        if task == "leaky-problem":
            # An upstream that echoes what it was sent into its problem: the gateway must
            # scrub it on the way out.
            args = body.get("args", {})
            return problem(
                422,
                "invalid-arguments",
                f"could not connect to {args.get('dsn')}",
                extra={"password": args.get("password"), "seen": args},
            )
        job = job_json(
            task, body.get("args", {}), idempotency_key=request.headers.get("idempotency-key")
        )
        state.jobs[job["id"]] = job
        state.owners[job["id"]] = tenant(request)
        return JSONResponse(
            job, status_code=202, headers={"Location": f"/internal/v1/jobs/{job['id']}"}
        )

    @app.post("/internal/v1/jobs")
    async def submit(request: Request) -> Response:
        return answer_submit(await request.json(), request)

    @app.post("/internal/v1/jobs/each")
    async def submit_each(request: Request) -> Response:
        """Each job as `submit` would answer it alone; an answer that would fail the whole
        call there (a crash, a body outside the contract, a 5xx) fails this whole call."""
        outcomes = []
        for body in (await request.json())["jobs"]:
            answer = answer_submit(body, request)
            if answer.status_code == 202:
                outcomes.append({"status": 202, "job": json.loads(answer.body)})
            elif answer.status_code == 422:
                outcomes.append({"status": 422, "problem": json.loads(answer.body)})
            else:
                return answer
        return JSONResponse({"outcomes": outcomes})

    @app.post("/internal/v1/jobs/batch")
    async def submit_batch(request: Request) -> Response:
        body = await request.json()
        jobs = [job_json(j["task"], j.get("args", {})) for j in body["jobs"]]
        if any(j["task"] == "garbage" for j in body["jobs"]):
            jobs = [{"id": "not-a-uuid", "status": "PENDING"} for _ in jobs]
        return JSONResponse({"jobs": jobs}, status_code=202)

    @app.get("/internal/v1/jobs/{job_id}")
    async def get_job(job_id: str, request: Request) -> Response:
        if state.owners.get(job_id) != tenant(request):
            return problem(404, "job-not-found", "No such job.", extra={"job_id": job_id})
        return JSONResponse(state.jobs[job_id])

    @app.get("/internal/v1/jobs")
    async def list_jobs(request: Request) -> Response:
        mine = [j for i, j in state.jobs.items() if state.owners[i] == tenant(request)]
        return JSONResponse({"items": mine, "next_cursor": "next-page"})

    @app.get("/internal/v1/tasks")
    async def tasks() -> Response:
        return JSONResponse(CATALOG)

    @app.get("/internal/v1/results/{job_id}")
    async def result(job_id: str) -> Response:
        if job_id not in state.results:
            return problem(404, "result-not-found", "No stored result for this job.")
        status, body, headers = state.results[job_id]
        media = "application/json" if status == 200 else PROBLEM_CONTENT_TYPE
        return JSONResponse(body, status_code=status, media_type=media, headers=headers)

    _add_job_action_routes(app, state)
    _add_dead_letter_routes(app, state)
    _add_api_key_routes(app, state)
    return app


def _tenant(request: Request) -> str:
    return request.headers[TENANT_HEADER]


def _job_not_found(job_id: str) -> Response:
    return problem(404, "job-not-found", "No such job.", extra={"job_id": job_id})


def _add_job_action_routes(app: FastAPI, state: DoubleState) -> None:
    """History, cancel and retry, as job-service's internal contract answers them."""

    def owned(job_id: str, request: Request) -> dict[str, Any] | None:
        return state.jobs[job_id] if state.owners.get(job_id) == _tenant(request) else None

    @app.get("/internal/v1/jobs/{job_id}/events")
    async def events(job_id: str, request: Request) -> Response:
        if owned(job_id, request) is None:
            return _job_not_found(job_id)
        return JSONResponse({"items": state.events.get(job_id, [])})

    @app.post("/internal/v1/jobs/{job_id}/cancel")
    async def cancel(job_id: str, request: Request) -> Response:
        job = owned(job_id, request)
        if job is None:
            return _job_not_found(job_id)
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return problem(
                409, "job-already-finished", "The job already finished.",
                extra={"status": job["status"]},
            )  # fmt: skip
        job["status"] = "CANCELLED"
        return JSONResponse(job)

    @app.post("/internal/v1/jobs/{job_id}/retry")
    async def retry(job_id: str, request: Request) -> Response:
        job = owned(job_id, request)
        if job is None:
            return _job_not_found(job_id)
        if job["status"] not in ("FAILED", "CANCELLED"):
            return problem(
                409, "job-not-retryable", "Only a FAILED or CANCELLED job can be retried.",
                extra={"status": job["status"]},
            )  # fmt: skip
        state.dead_letters.pop(job_id, None)
        job.update(status="PENDING", cycle=job.get("cycle", 1) + 1, dead_letter=False)
        return JSONResponse(job, status_code=202)


def _add_dead_letter_routes(app: FastAPI, state: DoubleState) -> None:
    """`/internal/v1/dead-letters`: scoped by the tenant header like the real one."""

    def mine(request: Request) -> list[str]:
        tenant = _tenant(request)
        return [i for i in reversed(state.dead_letters) if state.owners[i] == tenant]

    def read(job_id: str) -> dict[str, Any]:
        return {**state.jobs[job_id], **state.dead_letters[job_id]}

    def not_found(job_id: str) -> Response:
        return problem(404, "dead-letter-not-found", f"Job {job_id} is not a dead letter.")

    def replay_(job_id: str) -> dict[str, Any]:
        del state.dead_letters[job_id]
        job = state.jobs[job_id]
        job.update(status="PENDING", cycle=job.get("cycle", 1) + 1, dead_letter=False)
        return job

    @app.get("/internal/v1/dead-letters")
    async def list_(request: Request) -> Response:
        after = request.query_params.get("failed_after")
        before = request.query_params.get("failed_before")
        if after and before and datetime.fromisoformat(after) >= datetime.fromisoformat(before):
            return problem(
                422, "validation-error", "failed_after must be before failed_before",
                errors=[{"field": "query.failed_after", "reason": "must be before failed_before"}],
            )  # fmt: skip
        error_type = request.query_params.get("error_type")
        items = [
            read(i)
            for i in mine(request)
            if error_type is None or state.jobs[i]["error"]["type"] == error_type
        ]
        return JSONResponse({"items": items, "next_cursor": None})

    @app.post("/internal/v1/dead-letters/replay")
    async def replay_many(request: Request) -> Response:
        ids = list(dict.fromkeys((await request.json())["ids"]))
        found = [i for i in ids if i in mine(request)]
        for job_id in found:
            replay_(job_id)
        not_found_ = [i for i in ids if i not in found]
        return JSONResponse({"replayed": found, "not_found": not_found_}, status_code=202)

    @app.post("/internal/v1/dead-letters/purge")
    async def purge_many(request: Request) -> Response:
        body = await request.json()
        ids = mine(request) if "filter" in body else [i for i in body["ids"] if i in mine(request)]
        for job_id in ids:
            del state.dead_letters[job_id]
            state.jobs[job_id]["dead_letter"] = False
        return JSONResponse({"purged": len(ids)})

    @app.get("/internal/v1/dead-letters/{job_id}")
    async def get(job_id: str, request: Request) -> Response:
        return JSONResponse(read(job_id)) if job_id in mine(request) else not_found(job_id)

    @app.post("/internal/v1/dead-letters/{job_id}/replay")
    async def replay_one(job_id: str, request: Request) -> Response:
        if job_id not in mine(request):
            return not_found(job_id)
        return JSONResponse(replay_(job_id), status_code=202)

    @app.delete("/internal/v1/dead-letters/{job_id}")
    async def purge_one(job_id: str, request: Request) -> Response:
        if job_id not in mine(request):
            return not_found(job_id)
        del state.dead_letters[job_id]
        state.jobs[job_id]["dead_letter"] = False
        return Response(status_code=204)


def _add_api_key_routes(app: FastAPI, state: DoubleState) -> None:
    """`/internal/v1/api-keys`: scoped by the tenant header like the real one. Only the store:
    which scopes a caller may grant is the gateway's check."""
    base = "/internal/v1/api-keys"

    def mine(key_id: str, request: Request) -> bool:
        return state.api_keys.get(key_id, {}).get("tenant") == _tenant(request)

    def not_found(key_id: str) -> Response:
        return problem(404, "api-key-not-found", f"No API key {key_id}.", extra={"key_id": key_id})

    def created(record: dict[str, Any]) -> dict[str, Any]:
        return {**state.api_key_read(record["id"]), "key": record["key"]}

    @app.post(base)
    async def create(request: Request) -> Response:
        body = await request.json()
        expires_at = body.get("expires_at")
        record = state.add_api_key(
            _tenant(request), body["scopes"], name=body["name"], expires_at=None
        )
        record["expires_at"] = expires_at
        return JSONResponse(created(record), status_code=201)

    @app.get(base)
    async def list_(request: Request) -> Response:
        ids = [i for i in reversed(state.api_keys) if mine(i, request)]
        return JSONResponse({"items": [state.api_key_read(i) for i in ids], "next_cursor": None})

    @app.get(base + "/{key_id}")
    async def get(key_id: str, request: Request) -> Response:
        return (
            JSONResponse(state.api_key_read(key_id)) if mine(key_id, request) else not_found(key_id)
        )

    @app.post(base + "/{key_id}/revoke")
    async def revoke(key_id: str, request: Request) -> Response:
        if not mine(key_id, request):
            return not_found(key_id)
        record = state.api_keys[key_id]
        record["revoked_at"] = record["revoked_at"] or datetime.now(UTC).isoformat()
        return JSONResponse(state.api_key_read(key_id))

    @app.post(base + "/{key_id}/rotate")
    async def rotate(key_id: str, request: Request) -> Response:
        if not mine(key_id, request):
            return not_found(key_id)
        body = await request.json() if await request.body() else {}
        overlap = body.get("overlap_seconds", 86_400)
        old = state.api_keys[key_id]
        new = state.add_api_key(old["tenant"], old["scopes"], name=old["name"], rotated_from=key_id)
        old["expires_at"] = (datetime.now(UTC) + timedelta(seconds=overlap)).isoformat()
        answer = {"created": created(new), "previous": state.api_key_read(key_id)}
        return JSONResponse(answer, status_code=201)


class ThreadedServer:
    """A real uvicorn serving `app` from a thread of the test process."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
            lifespan="off", ws="none", http="h11", loop="asyncio", timeout_graceful_shutdown=1,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="upstream-double", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the upstream double did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def double_state() -> DoubleState:
    return DoubleState()


@pytest.fixture(scope="session")
def upstream_double(double_state: DoubleState) -> Iterator[ThreadedServer]:
    server = ThreadedServer(build_double(double_state)).start()
    yield server
    server.stop()


@pytest.fixture
def double(double_state: DoubleState, upstream_double: ThreadedServer) -> DoubleState:
    double_state.reset()
    return double_state


@pytest.fixture
def make_settings(
    upstream_double: ThreadedServer, redis_backend: Any, redis_namespace: str
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "internal_token": INTERNAL_TOKEN,
            "job_service_url": upstream_double.url,
            "result_service_url": upstream_double.url,
            # The rate limiter counts in the test's own namespace of the real Redis.
            "redis_url": redis_backend.url,
            "redis_namespace": redis_namespace,
            # Generous, so a loaded test machine never turns an answer into a 504; the timeout
            # test sets its own short one.
            "upstream_read_timeout": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


GatewayFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def open_gateway(make_settings: Callable[..., Settings]) -> GatewayFactory:
    @asynccontextmanager
    async def open_(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as client:
                client.app = app  # type: ignore[attr-defined]  # for tests that reach into state
                yield client

    return open_


@pytest.fixture
async def gateway(
    open_gateway: GatewayFactory, double: DoubleState
) -> AsyncIterator[httpx.AsyncClient]:
    async with open_gateway() as client:
        yield client


@dataclass(frozen=True)
class Keys:
    write: str = WRITE_KEY
    read: str = READ_KEY
    full: str = FULL_KEY
    other_tenant: str = OTHER_TENANT_KEY
    other_writer: str = OTHER_WRITER_KEY
    manage: str = MANAGE_KEY
    admin: str = ADMIN_KEY
    internal_token: str = INTERNAL_TOKEN


@pytest.fixture(scope="session")
def keys() -> Keys:
    """The API keys the double knows, and the internal token the gateway must present."""
    return Keys()


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    return free_port()


@dataclass
class JwksDouble:
    """An identity provider's JWKS endpoint: what it publishes, how often it was asked."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    fetches: int = 0

    def reset(self) -> None:
        self.document = {"keys": []}
        self.status = 200
        self.fetches = 0

    def publish(self, *jwks: dict[str, Any]) -> None:
        self.document = {"keys": list(jwks)}


@pytest.fixture(scope="session")
def jwks_double_state() -> JwksDouble:
    return JwksDouble()


@pytest.fixture(scope="session")
def jwks_server(jwks_double_state: JwksDouble) -> Iterator[ThreadedServer]:
    app = FastAPI()

    @app.get("/.well-known/jwks.json")
    async def jwks() -> Response:
        jwks_double_state.fetches += 1
        if jwks_double_state.status != 200:
            return PlainTextResponse("unavailable", status_code=jwks_double_state.status)
        return JSONResponse(jwks_double_state.document)

    server = ThreadedServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def jwks_double(jwks_double_state: JwksDouble, jwks_server: ThreadedServer) -> JwksDouble:
    jwks_double_state.reset()
    return jwks_double_state


@pytest.fixture
def jwks_url(jwks_server: ThreadedServer) -> str:
    return f"{jwks_server.url}/.well-known/jwks.json"
