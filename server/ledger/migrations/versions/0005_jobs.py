"""Transcription as a service: uploaded jobs, their priority over the directory backlog, and the
least model tier a job asks for.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite): the expression index ix_task_length stays as it is.
    op.add_column("task", sa.Column("job_id", sa.String(length=32), nullable=True))
    op.add_column("task", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("task", sa.Column("min_tier", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_task_job_id", "task", ["job_id"])
    op.create_index("ix_task_priority", "task", ["state", "priority"])
    op.create_table(
        "job",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("model_tier", sa.Integer(), nullable=False),
        sa.Column("callback_url", sa.String(), nullable=True),
        sa.Column("callback_sent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("job")
    op.drop_index("ix_task_priority", "task")
    op.drop_index("ix_task_job_id", "task")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("min_tier")
        batch.drop_column("priority")
        batch.drop_column("job_id")
