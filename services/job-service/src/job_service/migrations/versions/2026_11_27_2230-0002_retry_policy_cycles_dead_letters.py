"""Retry policy and attempt cycles on jobs, purged dead letters, cycles in the history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 22:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_UNIQUE = "uq_job_events_job_id_attempt_type"
_NEW_UNIQUE = "uq_job_events_job_id_cycle_attempt_type"


def upgrade() -> None:
    # Plain ADD COLUMNs (no table copy on SQLite): NOT NULL columns carry a server default that
    # fills the rows already there.
    op.add_column(
        "jobs", sa.Column("retry_backoff_seconds", sa.Float(), server_default="2", nullable=False)
    )
    op.add_column(
        "jobs",
        sa.Column("retry_backoff_max_seconds", sa.Float(), server_default="300", nullable=False),
    )
    op.add_column(
        "jobs", sa.Column("retry_jitter", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("jobs", sa.Column("cycle", sa.Integer(), server_default="1", nullable=False))
    op.add_column(
        "jobs", sa.Column("prior_attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "jobs", sa.Column("dead_letter_purged_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "job_events", sa.Column("cycle", sa.Integer(), server_default="1", nullable=False)
    )
    # job_events is referenced by nothing, so SQLite's batch copy of it can't cascade anywhere.
    with op.batch_alter_table("job_events") as batch:
        batch.drop_constraint(_OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(_NEW_UNIQUE, ["job_id", "cycle", "attempt", "type"])


def downgrade() -> None:
    # The same fact recorded in several cycles would break the narrower constraint: keep the
    # first of each.
    op.execute(
        "DELETE FROM job_events WHERE id NOT IN "
        "(SELECT MIN(id) FROM job_events GROUP BY job_id, attempt, type)"
    )
    with op.batch_alter_table("job_events") as batch:
        batch.drop_constraint(_NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(_OLD_UNIQUE, ["job_id", "attempt", "type"])
        batch.drop_column("cycle")
    for column in (
        "dead_letter_purged_at",
        "prior_attempts",
        "cycle",
        "retry_jitter",
        "retry_backoff_max_seconds",
        "retry_backoff_seconds",
    ):
        op.drop_column("jobs", column)
