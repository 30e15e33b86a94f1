"""API key format: `cvk_<prefix>_<secret>`.

The prefix (10 random lowercase letters and digits) is public: it finds the row and may appear
in logs and dashboards. The secret (32 random bytes, urlsafe base64) is shown once, at creation;
only its sha256 is stored. A sha256 (not a slow password hash) is enough because the secret is
256 random bits, not something a person chose."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_SCHEME = "cvk"
PREFIX_LENGTH = 10
SECRET_BYTES = 32
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_PATTERN = re.compile(r"^cvk_(?P<prefix>[a-z0-9]{8,12})_(?P<secret>[A-Za-z0-9_-]{43,128})$")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    prefix: str
    secret: str


def new_prefix() -> str:
    return "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def format_key(prefix: str, secret: str) -> str:
    return f"{KEY_SCHEME}_{prefix}_{secret}"


def parse_key(key: str) -> ParsedKey | None:
    match = _KEY_PATTERN.fullmatch(key)
    return ParsedKey(match["prefix"], match["secret"]) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
