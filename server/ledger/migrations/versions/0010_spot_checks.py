"""Spot checks: a check transcribes a range of the held result's task (the same range for every
checker of it), and a check's attempt records how much audio it transcribed. Tasks being checked
when this runs keep a whole-task check (no range).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task", sa.Column("check_start_ms", sa.Integer(), nullable=True))
    op.add_column("task", sa.Column("check_end_ms", sa.Integer(), nullable=True))
    op.add_column("attempt", sa.Column("checked_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("checked_ms")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("check_end_ms")
        batch.drop_column("check_start_ms")
