"""Long files as parts: a part names its file (parent_id); a file records the split it was cut for.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("split_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("note", sa.String(), nullable=True))
        batch.create_index("ix_task_parent_id", ["parent_id"])
        # Parts of one file go out in time order: the claim's ORDER BY path, start_ms uses this.
        batch.drop_index("ix_task_state_path")
        batch.create_index("ix_task_queue", ["state", "path", "start_ms"])


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_index("ix_task_queue")
        batch.create_index("ix_task_state_path", ["state", "path"])
        batch.drop_index("ix_task_parent_id")
        batch.drop_column("note")
        batch.drop_column("split_ms")
        batch.drop_column("parent_id")
