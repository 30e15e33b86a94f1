from __future__ import annotations

import pytest

from conveyor_common.logging import REDACTED, redact, redact_text


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "db_pass", "client_secret", "token", "api_key", "Api-Key",
     "Authorization", "credentials", "private_key", "database_dsn", "cookie"],
)  # fmt: skip
def test_secret_looking_keys_are_redacted(key):
    assert redact({key: "value", "user": "ada"}) == {key: REDACTED, "user": "ada"}


def test_nested_values_are_redacted():
    value = {"outer": [{"token": "t"}, ("x", {"password": 1})], "n": 3, "ok": None}
    assert redact(value) == {
        "outer": [{"token": REDACTED}, ["x", {"password": REDACTED}]],
        "n": 3,
        "ok": None,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/app", f"postgresql://app:{REDACTED}@db:5432/app"),
        ("redis://:pw@127.0.0.1:6379/0", f"redis://:{REDACTED}@127.0.0.1:6379/0"),
        ("postgresql+asyncpg://u:p@h/d", f"postgresql+asyncpg://u:{REDACTED}@h/d"),
        ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {REDACTED}"),
        ("key cvk_abc123_SECRETpart-x used", f"key {REDACTED} used"),
        ("http://example.com/path", "http://example.com/path"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_secrets_inside_strings_are_redacted(text, expected):
    assert redact_text(text) == expected
    assert redact({"message": text}) == {"message": expected}


def test_two_urls_in_one_string():
    text = "from amqp://a:one@x to redis://b:two@y"
    assert redact_text(text) == f"from amqp://a:{REDACTED}@x to redis://b:{REDACTED}@y"


def test_long_runs_of_url_characters_are_left_alone():
    blob = "A" * 50_000 + "://"  # shaped like a scheme but with no credentials after it
    assert redact_text(blob) == blob
    assert redact_text("x" * 10 + "redis://u:p@h") == f"xxxxxxxxxxredis://u:{REDACTED}@h"


def test_non_string_values_pass_through():
    assert redact(42) == 42
    assert redact(None) is None
    assert redact(b"password") == b"password"
