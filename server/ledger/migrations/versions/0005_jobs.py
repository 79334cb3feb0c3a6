"""Transcription as a service: uploaded jobs, their priority over the directory backlog, and the
least model tier a job asks for.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

LENGTH_MS = "coalesce(end_ms - start_ms, duration_ms, 0)"  # as tables.LENGTH_MS was at 0005

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN and CREATE/DROP INDEX (no batch copy on SQLite, which cannot reflect the
    # expression index). A claim walks one priority level: both queue indexes gain the priority.
    op.add_column("task", sa.Column("job_id", sa.String(length=32), nullable=True))
    op.add_column("task", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("task", sa.Column("min_tier", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_task_job_id", "task", ["job_id"])
    op.drop_index("ix_task_queue", "task")
    op.create_index("ix_task_queue", "task", ["state", "priority", "path", "start_ms"])
    op.drop_index("ix_task_length", "task")
    length_desc = sa.text(f"{LENGTH_MS} DESC")
    op.create_index(
        "ix_task_length",
        "task",
        ["state", "priority", length_desc, "path", "start_ms", "min_tier", "duration_ms", "end_ms"],
    )
    op.create_table(
        "job",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("callback_url", sa.String(), nullable=True),
        sa.Column("callback_sent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("job")
    op.drop_index("ix_task_length", "task")
    op.create_index("ix_task_length", "task", ["state", sa.text(f"{LENGTH_MS} DESC"), "path", "start_ms"])
    op.drop_index("ix_task_queue", "task")
    op.create_index("ix_task_queue", "task", ["state", "path", "start_ms"])
    op.drop_index("ix_task_job_id", "task")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("min_tier")
        batch.drop_column("priority")
        batch.drop_column("job_id")
