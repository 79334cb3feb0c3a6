"""The fleet scheduler: learned speeds, tail replicas, the grant's predicted finish, bad-host cool-down.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

LENGTH_MS = "coalesce(end_ms - start_ms, duration_ms, 0)"  # as tables.LENGTH_MS was at 0004

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("replicas", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(sa.Column("replica", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("eta", sa.Float(), nullable=True))
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("strikes", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cooldowns", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cooldown_until", sa.Float(), nullable=True))
    op.create_table(
        "speed",
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("audio_seconds", sa.Float(), nullable=False),
        sa.Column("processing_seconds", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("client", "model", "backend"),
    )
    # The scheduler's longest / shortest queued task (tables.LENGTH_MS), without sorting the queue. Last:
    # SQLite's batch mode cannot reflect an expression index, so a later batch_alter_table("task") must
    # create it again (tests/integration/test_migrations.py checks that it exists).
    op.create_index("ix_task_length", "task", ["state", sa.text(f"{LENGTH_MS} DESC"), "path", "start_ms"])


def downgrade() -> None:
    op.drop_table("speed")
    with op.batch_alter_table("client") as batch:
        batch.drop_column("cooldown_until")
        batch.drop_column("cooldowns")
        batch.drop_column("strikes")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("eta")
        batch.drop_column("replica")
    op.drop_index("ix_task_length", "task")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("replicas")
