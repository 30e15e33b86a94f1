"""Jobs remember the trace they were submitted in (W3C `traceparent`), so every attempt the
relay publishes, retries included, continues that trace.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 01:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a plain ADD COLUMN (no rewrite on PostgreSQL, no copy on SQLite).
    op.add_column("jobs", sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35), never a batch copy: recreating `jobs` on
    # SQLite would cascade-delete its history and outbox rows.
    op.drop_column("jobs", "traceparent")
