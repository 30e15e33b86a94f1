"""Job ids are UUIDv7: unique without coordination and ordered by creation time, so the
primary key doubles as the keyset-pagination key and inserts stay at the end of the index."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
