"""No secret in any log line or error the gateway produces.

Canary secrets travel in every place a client or an operator puts secrets: the Authorization
header (API key, JWT, Basic password), job arguments named like secrets, an Idempotency-Key,
malformed bodies, invalid fields, an upstream problem that echoes what it was sent, and the
gateway's own settings (internal token, Redis password). Logging is configured as in production
(JSON lines at DEBUG) and every line is captured, with every response; no canary may appear in
a log line, a response header, or the body of any error answer. (A `202` body repeats the job's
own arguments to the tenant that sent them: that is the tenant's data, not a leak.)"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from conveyor_common.logging import configure_logging

pytestmark = pytest.mark.integration


def canary(label: str) -> str:
    return f"cnry{label}{secrets.token_hex(8)}"


@dataclass
class CapturedOutput:
    handler: io.StringIO
    streams: pytest.CaptureFixture[str]

    def lines(self) -> list[str]:
        """What the gateway's log handler wrote: one JSON object per line."""
        return [line for line in self.handler.getvalue().splitlines() if line.strip()]

    def everything(self) -> str:
        """The handler's output plus anything else written to stdout or stderr."""
        written = self.streams.readouterr()
        return self.handler.getvalue() + written.out + written.err


@pytest.fixture
def production_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[CapturedOutput]:
    """The gateway's real log set-up (`python -m api_gateway` calls the same function), with its
    stderr handler pointed at a buffer."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("api-gateway", json=True, level="DEBUG")
    # Loggers must pick up the configuration per call, so restoring it afterwards is complete.
    structlog.configure(cache_logger_on_first_use=False)
    buffer = io.StringIO()
    (ours,) = root.handlers
    assert isinstance(ours, logging.StreamHandler)
    ours.setStream(buffer)
    try:
        yield CapturedOutput(buffer, capsys)
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def test_no_canary_in_any_log_line_or_error(
    open_gateway: Any,
    double: Any,
    keys: Any,
    unused_port: int,
    production_logging: CapturedOutput,
) -> None:
    api_key = f"cvk_cnry01_{secrets.token_urlsafe(32)}"
    basic_password = canary("basic")
    junk_token = canary("junk")
    arg_secrets = [canary("pw"), canary("apitoken"), canary("nested")]
    idempotency_key = canary("idem")
    bad_idempotency_key = canary("badidem")
    malformed = canary("malformed")
    invalid_field = canary("invalidfield")
    field_name_key = f"cvk_cnry02_{secrets.token_urlsafe(24)}"
    path_key = f"cvk_cnry03_{secrets.token_hex(24)}"
    dsn_password = canary("dsn")
    leaked_password = canary("leaked")
    internal_token = canary("internal")
    redis_password = canary("redis")
    # A real ES256 token, signed by a key the gateway does not trust.
    signer = ec.generate_private_key(ec.SECP256R1())
    trusted = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    token = jwt.encode(
        {"iss": "https://idp.test/", "aud": "conveyor", "exp": int(time.time()) + 300,
         "tenant": "acme", "scope": "jobs:read"},
        signer, algorithm="ES256", headers={"kid": "k1"},
    )  # fmt: skip
    canaries = [
        api_key, token, token.rsplit(".", 1)[1], basic_password, junk_token, *arg_secrets,
        idempotency_key, bad_idempotency_key, malformed, invalid_field, field_name_key,
        dsn_password, leaked_password, internal_token, redis_password, path_key,
    ]  # fmt: skip

    double.internal_token = internal_token
    writer = bearer(keys.full)
    successes: list[httpx.Response] = []
    errors: list[httpx.Response] = []

    async with open_gateway(
        internal_token=internal_token,
        jwt_jwks=json.dumps({"keys": [{**trusted, "kid": "k1"}]}),
        jwt_issuer="https://idp.test/",
        jwt_audience="conveyor",
    ) as gateway:

        async def call(expected: int, method: str, path: str, **kwargs: Any) -> None:
            response = await gateway.request(method, path, **kwargs)
            assert response.status_code == expected, (method, path, response.text)
            (successes if expected < 400 else errors).append(response)

        basic = base64.b64encode(f"ada:{basic_password}".encode()).decode()
        await call(401, "GET", "/v1/tasks", headers=bearer(api_key))
        await call(401, "GET", "/v1/tasks", headers=bearer(token))
        await call(401, "GET", "/v1/tasks", headers={"Authorization": f"Basic {basic}"})
        await call(401, "GET", "/v1/tasks", headers=bearer(junk_token))
        await call(401, "POST", "/v1/jobs", headers=bearer(api_key), json={"task": "echo"})
        await call(
            202, "POST", "/v1/jobs", headers=writer,
            json={"task": "echo", "args": {"password": arg_secrets[0], "api_token": arg_secrets[1],
                                           "nested": {"client_secret": arg_secrets[2]}}},
        )  # fmt: skip
        await call(
            202, "POST", "/v1/jobs", headers={**writer, "Idempotency-Key": idempotency_key},
            json={"task": "echo"},
        )  # fmt: skip
        await call(
            422, "POST", "/v1/jobs", headers={**writer, "Idempotency-Key": f"a b {bad_idempotency_key}"},
            json={"task": "echo"},
        )  # fmt: skip
        await call(
            400, "POST", "/v1/jobs", headers={**writer, "Content-Type": "application/json"},
            content=b'{"task": "echo", "args": {"password": "' + malformed.encode() + b'"',
        )  # fmt: skip
        await call(
            422, "POST", "/v1/jobs", headers=writer,
            json={"task": f"no such/{invalid_field}", "priority": invalid_field,
                  "queue": f"bad queue {invalid_field}", "args": {"password": invalid_field}},
        )  # fmt: skip
        await call(
            422, "POST", "/v1/jobs", headers=writer, json={"task": "echo", field_name_key: 1}
        )
        await call(
            415, "POST", "/v1/jobs", headers={**writer, "Content-Type": "text/plain"},
            content=f"password={invalid_field}".encode(),
        )  # fmt: skip
        await call(
            422, "POST", "/v1/jobs", headers=writer,
            json={"task": "leaky-problem",
                  "args": {"dsn": f"postgresql://app:{dsn_password}@db/app",
                           "password": leaked_password}},
        )  # fmt: skip
        await call(422, "GET", f"/v1/jobs?status={invalid_field}", headers=writer)
        # An API key pasted where a job id goes: the problem's `instance` names the path.
        await call(422, "GET", f"/v1/jobs/{path_key}", headers=writer)
        # The internal token refused upstream: an operator's problem, logged without the token.
        double.refuse_token_on_data_routes = True
        await call(502, "GET", "/v1/tasks", headers=writer)

    # A gateway whose rate-limit Redis cannot be reached with its (canary) password.
    double.refuse_token_on_data_routes = False
    async with open_gateway(
        internal_token=internal_token,
        redis_url=f"redis://conveyor@127.0.0.1:{unused_port}/0",
        redis_password=redis_password,
    ) as gateway:
        response = await gateway.get("/v1/tasks", headers=bearer(keys.read))
        assert response.status_code == 200
        successes.append(response)

    lines = production_logging.lines()
    log_text = production_logging.everything()
    events = {json.loads(line)["event"] for line in lines}
    # The capture is real: the events these requests must produce are in it.
    assert {
        "auth.rejected",
        "auth.token_rejected",
        "upstream.internal_token_refused",
        "ratelimit.unavailable",
    } <= events, events
    # The canaries did reach the gateway: the accepted job echoes its arguments to its tenant.
    assert arg_secrets[0] in successes[0].text

    for secret in canaries:
        assert secret not in log_text, f"a canary reached the logs: {secret[:12]}..."
        for response in errors:
            assert secret not in response.text, (response.request.url.path, response.text)
        for response in successes + errors:
            assert secret not in str(response.headers), response.request.url.path
    for response in errors:
        assert response.headers["content-type"] == "application/problem+json"
