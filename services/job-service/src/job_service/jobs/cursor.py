"""Opaque keyset cursors for job listings: the last id of a page, urlsafe-base64 encoded.

Clients must treat the token as opaque; the version byte lets its content change later."""

from __future__ import annotations

import base64
import binascii
import uuid

from conveyor_common.problems import FieldError, InvalidRequest

_VERSION = b"\x01"


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(_VERSION + last_id.bytes).rstrip(b"=").decode()


def decode_cursor(token: str, *, field: str = "query.cursor") -> uuid.UUID:
    invalid = InvalidRequest(
        f"{field}: not a cursor this service issued",
        errors=[FieldError(field=field, reason="not a cursor this service issued")],
    )
    if not token or len(token) > 64:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    if len(raw) != 17 or raw[:1] != _VERSION:
        raise invalid
    return uuid.UUID(bytes=raw[1:])
