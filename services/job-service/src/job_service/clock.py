"""The one clock job-service uses for timestamps and due-ness: UTC from the application host.

Every timestamp Conveyor stores is UTC and aware; comparing `run_at`/`next_attempt_at` with
this clock (rather than mixing it with the database's) keeps due-ness consistent on SQLite and
PostgreSQL alike (pitfall #20). Hosts are expected to run NTP."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
