"""Pure helpers: API key format, cursors, schema error wording, URLs, timestamps."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from conveyor_common.problems import InvalidRequest
from job_service.api_keys.keys import (
    format_key,
    hash_secret,
    new_prefix,
    new_secret,
    parse_key,
    secret_matches,
)
from job_service.db import async_database_url
from job_service.jobs.cursor import decode_cursor, encode_cursor
from job_service.models.types import UTCDateTime
from job_service.tasks.validation import args_errors, compile_schema


def test_api_key_format_round_trips_and_only_the_hash_matches() -> None:
    prefix, secret = new_prefix(), new_secret()
    key = format_key(prefix, secret)
    assert key.startswith(f"cvk_{prefix}_")
    assert re.fullmatch(r"[a-z0-9]{8,12}", prefix)
    assert len(secret) >= 43
    parsed = parse_key(key)
    assert parsed is not None
    assert (parsed.prefix, parsed.secret) == (prefix, secret)
    stored = hash_secret(secret)
    assert secret not in stored
    assert len(stored) == 64
    assert secret_matches(secret, stored)
    assert not secret_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    assert len({new_prefix() for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "key", ["", "cvk_", "cvk_abc_short", "xyz_abcdefghij_" + "a" * 43, "cvk_ABCDEFGHIJ_" + "a" * 43]
)
def test_malformed_keys_do_not_parse(key: str) -> None:
    assert parse_key(key) is None


def test_cursor_round_trips_and_rejects_tampering() -> None:
    job_id = uuid.uuid4()
    token = encode_cursor(job_id)
    assert decode_cursor(token) == job_id
    assert "=" not in token
    for bad in (
        "",
        "!!!",
        token[:-2],
        "A" + token,
        encode_cursor(job_id).replace("A", "B", 1) + "xx",
    ):
        with pytest.raises(InvalidRequest) as info:
            decode_cursor(bad)
        assert info.value.errors is not None
        assert info.value.errors[0].field == "query.cursor"


SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "maximum": 10},
        "tags": {"type": "array", "items": {"type": "string"}},
        "mode": {"enum": ["a", "b"]},
        "nested": {"type": "object", "properties": {"k": {"type": "string", "minLength": 2}}},
    },
    "required": ["n", "mode"],
    "additionalProperties": False,
}


def test_schema_errors_name_paths_and_rules_never_values() -> None:
    validator = compile_schema(SCHEMA)
    secret = "s3cr3t-value"
    args = {"n": 99, "tags": ["ok", 7], "nested": {"k": "x"}, secret: secret}
    errors = {e.field: e.reason for e in args_errors(validator, args, "body.jobs.3.args")}
    assert errors == {
        "body.jobs.3.args.mode": "is required",
        f"body.jobs.3.args.{secret}": "is not allowed",
        "body.jobs.3.args.n": "must be <= 10",
        "body.jobs.3.args.tags.1": "must be of type 'string'",
        "body.jobs.3.args.nested.k": "must be at least 2 characters long",
    }
    assert all(secret not in reason for reason in errors.values())
    assert all("99" not in reason for reason in errors.values())
    assert args_errors(validator, {"n": 1, "mode": "a"}, "body.args") == []


def test_invalid_schemas_are_refused() -> None:
    from jsonschema.exceptions import SchemaError

    with pytest.raises(SchemaError):
        compile_schema({"type": "no-such-type"})


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
    ],
)
def test_database_urls_get_an_async_driver(given: str, driver: str) -> None:
    assert async_database_url(given).drivername == driver


def test_timestamps_are_stored_utc_and_come_back_aware() -> None:
    column = UTCDateTime()
    plus_two = datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = column.process_bind_param(plus_two, sqlite.dialect())
    assert stored == datetime(2026, 5, 1, 12, 0)  # naive UTC text on SQLite
    back = column.process_result_value(stored, sqlite.dialect())
    assert back == plus_two
    assert back.tzinfo is UTC
    assert column.process_bind_param(plus_two, postgresql.dialect()) == plus_two
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 5, 1), sqlite.dialect())
