"""No secret in any log line or error of the whole stack (issue 4, "Done when").

Random canary secrets go everywhere an operator or a client puts secrets: the stack's settings
(internal token, Redis password, database password), credentials in headers, and job arguments
named like secrets, for jobs that succeed, that are refused at submission, and that fail in the
worker with an error echoing what they were given. Every process logs JSON at DEBUG into its own
file; afterwards no canary may appear in any of those lines, nor in any response header, nor in
the body of any answer the test got, in plain, base64 or URL-encoded form.

What is not searched: the bodies that hand a tenant's own job back to that tenant (the `202`
of a submission, `GET /v1/jobs/{id}`, its result and the job list). docs/security.md promises the
owner its arguments, results and errors as given; those are the tenant's data, read with its own
key, not a leak. Logs never carry them."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from conveyor_devstack.output import LogFiles
from conveyor_devstack.redis_server import RedisServer
from conveyor_devstack.stack import GATEWAY, JOB_SERVICE, RESULT_SERVICE, Stack
from conveyor_testing.api import auth, wait_final
from conveyor_testing.stacks import running_stack

from .support import KeyMaker

pytestmark = [pytest.mark.e2e]


def canary(label: str) -> str:
    return f"cnry{label}{secrets.token_hex(10)}"


@dataclass
class Canaries:
    internal_token: str = field(default_factory=lambda: canary("internal"))
    redis_password: str = field(default_factory=lambda: canary("redis"))
    database_password: str = field(default_factory=lambda: canary("db"))
    # A well-formed key (`cvk_<prefix>_<secret>`) that job-service does not know.
    wrong_key: str = field(default_factory=lambda: f"cvk_{secrets.token_hex(4)}_{canary('key')}")
    junk_token: str = field(default_factory=lambda: canary("junk"))
    # The signature of a JWT-shaped bearer token (no identity provider is configured here).
    jwt_signature: str = field(default_factory=lambda: canary("jwtsig"))
    basic_password: str = field(default_factory=lambda: canary("basic"))
    cookie: str = field(default_factory=lambda: canary("cookie"))
    x_api_key: str = field(default_factory=lambda: canary("xapikey"))
    wrong_internal_token: str = field(default_factory=lambda: canary("wronginternal"))
    arguments: dict[str, str] = field(
        default_factory=lambda: {
            name: canary(name.replace("_", ""))
            for name in ("password", "api_key", "token", "secret", "authorization", "nested")
        }
    )
    refused: dict[str, str] = field(
        default_factory=lambda: {
            name: canary(f"refused{name}") for name in ("sleep", "fail", "unknown", "field")
        }
    )
    echoed: dict[str, str] = field(
        default_factory=lambda: {
            name: canary(f"echo{name}") for name in ("dsn", "bearer", "kv", "url", "header")
        }
    )
    # Only a server without a password of its own accepts a made-up one.
    with_database_password: bool = True

    def all(self) -> list[str]:
        values = [
            self.internal_token, self.redis_password, self.wrong_key, self.junk_token,
            self.jwt_signature,
            self.basic_password, self.cookie, self.x_api_key, self.wrong_internal_token,
            *self.arguments.values(), *self.refused.values(), *self.echoed.values(),
        ]  # fmt: skip
        if self.with_database_password:
            values.append(self.database_password)
        return values


def encodings(secret: str) -> set[str]:
    """The forms a secret could leak in besides itself."""
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


@pytest.fixture(scope="module")
def canaries() -> Canaries:
    return Canaries()


@pytest.fixture(scope="module")
def guarded_redis_url(canaries: Canaries) -> Iterator[str]:
    """A Redis of our own that requires a password: the shared one has none to leak."""
    server = RedisServer(extra_args=["--requirepass", canaries.redis_password]).start()
    try:
        yield f"redis://:{canaries.redis_password}@127.0.0.1:{server.port}/0"
    finally:
        server.close()


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}{port}"))


@pytest.fixture(scope="module")
def module_stack(
    postgres_backend: Any,
    guarded_redis_url: str,
    canaries: Canaries,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    postgres_url = postgres_backend.url
    if urlsplit(postgres_url).password is None:
        # The test servers trust loopback connections, so any password is accepted; a service
        # that printed its DSN would print this one.
        postgres_url = with_password(postgres_url, canaries.database_password)
    else:
        canaries.with_database_password = False
    with running_stack(
        postgres_url,
        guarded_redis_url,
        tmp_path_factory.mktemp("canary-logs"),
        internal_token=canaries.internal_token,
        extra_env={"CONVEYOR_LOG_LEVEL": "DEBUG", "CONVEYOR_LOG_JSON": "true"},
    ) as stack:
        yield stack


@dataclass
class Exchange:
    """Every response the test received, and which of them hand a tenant its own job."""

    responses: list[httpx.Response] = field(default_factory=list)
    owner_reads: set[int] = field(default_factory=set)

    def add(self, response: httpx.Response, *, owner_read: bool = False) -> httpx.Response:
        self.responses.append(response)
        if owner_read:
            self.owner_reads.add(len(self.responses) - 1)
        return response

    def searchable(self) -> Iterator[tuple[str, str]]:
        """(where, text) for every header block and every body that is not an owner read."""
        for index, response in enumerate(self.responses):
            where = f"{response.request.method} {response.request.url.path} {response.status_code}"
            yield f"{where} headers", "\n".join(f"{k}: {v}" for k, v in response.headers.items())
            if index not in self.owner_reads:
                yield f"{where} body", response.text


def log_lines(stack: Stack) -> dict[str, list[str]]:
    assert isinstance(stack.output, LogFiles)
    return {
        path.stem: path.read_text(errors="replace").splitlines()
        for path in sorted(Path(stack.output.log_dir).glob("*.log"))
    }


def test_no_canary_in_any_log_line_or_response(module_stack: Stack, canaries: Canaries) -> None:
    stack = module_stack
    key = KeyMaker(stack.config.database_url).create(f"canary-{uuid.uuid4().hex[:8]}").plaintext
    exchange = Exchange()
    accepted: dict[str, str] = {}  # job id -> the status it must end in

    with httpx.Client(base_url=stack.gateway_url, timeout=15.0) as client:

        def call(expected: int, method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = exchange.add(client.request(method, path, **kwargs))
            assert response.status_code == expected, (method, path, response.text)
            return response

        def submit(body: dict[str, Any], final_status: str) -> None:
            response = exchange.add(
                client.post("/v1/jobs", json=body, headers=auth(key)), owner_read=True
            )
            assert response.status_code == 202, response.text
            accepted[response.json()["id"]] = final_status

        # Credentials that are wrong, in every form a client might send one.
        basic = base64.b64encode(f"ada:{canaries.basic_password}".encode()).decode()
        call(401, "GET", "/v1/tasks", headers=auth(canaries.wrong_key))
        call(401, "POST", "/v1/jobs", headers=auth(canaries.wrong_key), json={"task": "echo"})
        call(401, "GET", "/v1/jobs", headers=auth(canaries.junk_token))
        head = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
        body = base64.urlsafe_b64encode(b'{"tenant":"acme"}').decode().rstrip("=")
        call(401, "GET", "/v1/jobs", headers=auth(f"{head}.{body}.{canaries.jwt_signature}"))
        call(401, "GET", "/v1/jobs", headers={"Authorization": f"Basic {basic}"})
        call(401, "GET", "/v1/jobs", headers={"Authorization": canaries.wrong_key})
        call(401, "GET", "/v1/jobs", headers={"X-Api-Key": canaries.x_api_key})
        # Headers the API does not use, next to a valid key: ignored, never echoed or logged.
        extra = {"Cookie": f"session={canaries.cookie}", "X-Api-Key": canaries.x_api_key}
        call(200, "GET", "/v1/tasks", headers={**auth(key), **extra})

        # Arguments named like secrets, for a job that succeeds...
        args = canaries.arguments
        submit(
            {"task": "echo", "args": {
                "password": args["password"], "api_key": args["api_key"], "token": args["token"],
                "secret": args["secret"], "authorization": f"Bearer {args['authorization']}",
                "nested": {"client_secret": args["nested"]},
            }},
            "SUCCEEDED",
        )  # fmt: skip
        # ...for jobs refused at submission (schema violations, an unknown task)...
        refused = canaries.refused
        call(
            422, "POST", "/v1/jobs", headers=auth(key),
            json={"task": "sleep", "args": {"seconds": refused["sleep"], "password": refused["sleep"]}},
        )  # fmt: skip
        call(
            422, "POST", "/v1/jobs", headers=auth(key),
            json={"task": "fail", "args": {"message": {"token": refused["fail"]},
                                           "error_type": f"not a class {refused['fail']}"}},
        )  # fmt: skip
        call(
            422, "POST", "/v1/jobs", headers=auth(key),
            json={"task": f"no.such.task.{refused['unknown']}", "args": {"api_key": refused["unknown"]}},
        )  # fmt: skip
        call(
            422, "POST", "/v1/jobs", headers=auth(key),
            json={"task": "echo", "args": {}, "priority": refused["field"]},
        )  # fmt: skip
        # ...and for jobs whose task fails with an error that repeats what it was given.
        echoed = canaries.echoed
        submit(
            {"task": "fail", "args": {"permanent": True, "message": (
                f"cannot connect to postgresql://app:{echoed['dsn']}@db:5432/app; upstream "
                f"answered to Authorization: Bearer {echoed['bearer']}; "
                f"config had password={echoed['kv']}"
            )}},
            "FAILED",
        )  # fmt: skip
        submit(
            {"task": "http.request", "args": {
                # Loopback: refused by the worker's network guard before any connection.
                "url": f"http://ada:{echoed['url']}@127.0.0.1:9/hook",
                "headers": {"Authorization": f"Bearer {echoed['header']}",
                            "X-Api-Key": echoed["header"]},
            }},
            "FAILED",
        )  # fmt: skip

        for job_id, status in accepted.items():
            job = wait_final(client, job_id, key)
            assert job["status"] == status, job
            exchange.add(client.get(f"/v1/jobs/{job_id}", headers=auth(key)), owner_read=True)
            exchange.add(
                client.get(f"/v1/jobs/{job_id}/result", headers=auth(key)), owner_read=True
            )
            exchange.add(client.get(f"/v1/jobs/{job_id}/events", headers=auth(key)))

    # An internal service called with a wrong internal token: refused, and not logged.
    for url in (
        f"{stack.job_service_url}/internal/v1/tasks",
        f"{stack.result_service_url}/internal/v1/results/{next(iter(accepted))}",
    ):
        response = exchange.add(
            httpx.get(
                url,
                headers={"X-Conveyor-Internal-Token": canaries.wrong_internal_token},
            )
        )
        assert response.status_code in (401, 403, 404), response.text

    # Stopped first, so the lines of shutting down (connections closed, pools drained) count too.
    stack.stop(grace=10.0)
    logs = log_lines(stack)
    # The capture is real: every process wrote JSON lines, and they tell of these very jobs.
    for process in (GATEWAY, JOB_SERVICE, RESULT_SERVICE, *stack.worker_names):
        assert logs.get(process), f"no log lines from {process}: {sorted(logs)}"
    everything = "\n".join("\n".join(lines) for lines in logs.values())
    for job_id in accepted:
        assert job_id in "\n".join(logs[stack.worker_names[0]]), job_id
    events = {
        json.loads(line).get("event")
        for lines in logs.values()
        for line in lines
        if line.startswith("{")
    }
    assert {"auth.rejected", "jobs.failed", "jobs.succeeded"} <= events, sorted(map(str, events))
    # The canaries did reach the stack: the owner's own reads of its jobs carry them.
    owner_text = "\n".join(exchange.responses[i].text for i in exchange.owner_reads)
    assert args["password"] in owner_text

    leaks = [
        f"{secret[:14]}... in {where}"
        for secret in canaries.all()
        for form in encodings(secret)
        for where, text in [("logs", everything), *exchange.searchable()]
        if form in text
    ]
    assert not leaks, "\n".join(sorted(set(leaks)))
