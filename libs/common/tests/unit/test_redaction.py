"""Every kind of secret Conveyor handles is redacted from log values and problem bodies: API keys,
bearer tokens, JWTs, DSN passwords, and values of fields named like secrets."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest
import structlog

from conveyor_common.logging import REDACTED, configure_logging, redact, redact_text

API_KEY = "cvk_ab12cd_" + "S3cretPart-_x" * 3
# header {"alg":"RS256","typ":"JWT"} . payload . signature, as an identity provider issues them
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJhZGEiLCJ0ZW5hbnQiOiJhY21lIn0."
    "c2lnbmF0dXJlLWJ5dGVzLWhlcmU_-x"
)
BASIC = base64.b64encode(b"ada:hunter2-canary").decode()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param(f"key {API_KEY} used", API_KEY, id="api-key"),
        pytest.param(f"Authorization: Bearer {API_KEY}", API_KEY, id="bearer-api-key"),
        pytest.param(f"Authorization: Bearer {JWT}", JWT, id="bearer-jwt"),
        pytest.param(f"token={JWT}&x=1", JWT, id="bare-jwt"),
        pytest.param(f'{{"id_token": "{JWT}"}}', JWT, id="jwt-in-json-text"),
        pytest.param(f"Authorization: Basic {BASIC}", BASIC, id="basic-auth"),
        pytest.param("redis://conveyor:pw-canary@redis:6379/0", "pw-canary", id="redis-acl"),
        pytest.param("rediss://:pw-canary@redis:6380/0", "pw-canary", id="rediss"),
        pytest.param("postgresql+asyncpg://app:pw-canary@db/app", "pw-canary", id="postgres"),
    ],
)
def test_secrets_inside_text_are_redacted(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_a_jwt_without_signature_is_still_redacted() -> None:
    unsigned = JWT.rsplit(".", 1)[0] + "."
    assert redact_text(f"got {unsigned} here") == f"got {REDACTED} here"


def test_ordinary_dotted_text_is_left_alone() -> None:
    text = "api_gateway.auth.tokens rejected job 0190.abc.def"
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "field",
    ["password", "db_password", "passwd", "api_token", "access_token", "refresh_token",
     "client_secret", "api_key", "X-Api-Key", "private_key", "signing_key", "aws_access_key_id",
     "authorization", "auth", "credentials", "session_cookie", "jwt", "bearer", "database_dsn"],
)  # fmt: skip
def test_argument_fields_named_like_secrets_are_redacted(field: str) -> None:
    args = {"job": {"args": {field: "plain-canary", "count": 3}}}
    assert redact(args) == {"job": {"args": {field: REDACTED, "count": 3}}}


@pytest.mark.parametrize(
    "field", ["author", "authority", "passenger_count", "keyboard", "tokenizer_name"]
)
def test_where_the_field_name_line_is(field: str) -> None:
    # "pass", "token" match as substrings on purpose (better too much than too little); these
    # show where the line is.
    expected = REDACTED if field in {"passenger_count", "tokenizer_name"} else "v"
    assert redact({field: "v"}) == {field: expected}


def test_rendered_log_lines_carry_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("test", json=True, level="INFO")
        structlog.configure(cache_logger_on_first_use=False)
        log = structlog.get_logger("t")
        log.info(
            "auth.attempt",
            authorization=f"Bearer {API_KEY}",
            header=f"Bearer {JWT}",
            args={"password": "pw-canary-1", "nested": [{"api_token": "pw-canary-2"}]},
            dsn_text="redis://u:pw-canary-3@h/0",
        )
        logging.getLogger("uvicorn.error").warning("stdlib line with %s", JWT)
        try:
            raise RuntimeError(f"connect failed postgresql://app:pw-canary-4@db/app {API_KEY}")
        except RuntimeError:
            log.exception("boom")
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        json.loads(line)
    text = "\n".join(lines)
    for secret in (API_KEY, JWT, "pw-canary-1", "pw-canary-2", "pw-canary-3", "pw-canary-4"):
        assert secret not in text


def test_lines_below_the_level_skip_the_processors(capsys: pytest.CaptureFixture[str]) -> None:
    redacted: list[str] = []

    class Probe(dict[str, int]):
        """Counts the redaction passes over it (the redaction processor walks `items()`)."""

        def items(self):  # type: ignore[override]
            redacted.append("pass")
            return super().items()

    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("test", json=True, level="WARNING")
        structlog.configure(cache_logger_on_first_use=False)
        log = structlog.get_logger("t")
        log.info("jobs.started", probe=Probe(a=1))
        log.warning("jobs.slow", probe=Probe(a=1))
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["jobs.slow"]
    assert redacted == ["pass"]  # only the line that was written went through them


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("config had password=pw-canary; ok", f"config had password={REDACTED}; ok"),
        ("PASSWORD = pw-canary", f"PASSWORD = {REDACTED}"),
        ("http://h/p?api_key=pw-canary&page=2", f"http://h/p?api_key={REDACTED}&page=2"),
        ("url=http://h/p?token=pw-canary", f"url=http://h/p?token={REDACTED}"),
        ("dsn=postgresql://app:pw-canary@db/app", f"dsn={REDACTED}"),
        # A mapping logged as text: Celery prints task results and exceptions as Python reprs.
        ("{'password': 'pw canary', 'n': 1}", f"{{'password': '{REDACTED}', 'n': 1}}"),
        ('{"client_secret": "pw-\\"canary", "n": 1}', f'{{"client_secret": "{REDACTED}", "n": 1}}'),
        (
            "TaskFailure('RuntimeError', 'auth=pw-canary')",
            f"TaskFailure('RuntimeError', 'auth={REDACTED}')",
        ),
    ],
)
def test_values_of_secret_named_keys_inside_text_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["passed: 3 of 4", "author=ada", "routing_key=default", "Authorization: missing", "a=b c=d"],
)
def test_other_keys_and_bare_labels_inside_text_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_key_value_redaction_takes_linear_time_on_hostile_text() -> None:
    for blob in ("a" * 200_000, "token" * 40_000, "a=b " * 50_000, '"token":' * 25_000):
        start = time.perf_counter()
        redact_text(blob)
        assert time.perf_counter() - start < 2.0, blob[:20]
