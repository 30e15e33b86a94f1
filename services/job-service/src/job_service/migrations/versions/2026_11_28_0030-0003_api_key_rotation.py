"""API-key rotation: a key records the key it replaced.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 00:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable ADD COLUMN and a unique index: no table copy on SQLite, no rewrite on PostgreSQL.
    op.add_column("api_keys", sa.Column("rotated_from", sa.Uuid(), nullable=True))
    op.create_index(op.f("ix_api_keys_rotated_from"), "api_keys", ["rotated_from"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_rotated_from"), table_name="api_keys")
    op.drop_column("api_keys", "rotated_from")
