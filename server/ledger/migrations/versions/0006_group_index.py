"""The real fleet: the scheduler picks within one group of the queue (priority, language, least
model tier), so ix_task_length leads with those columns.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from typing import Union

import sqlalchemy as sa
from alembic import op

LENGTH_MS = "coalesce(end_ms - start_ms, duration_ms, 0)"  # as tables.LENGTH_MS was at 0006

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Columns = list[Union[str, sa.TextClause]]
BEFORE: Columns = [
    *("state", "priority", sa.text(f"{LENGTH_MS} DESC"), "path", "start_ms"),
    *("min_tier", "duration_ms", "end_ms"),
]
AFTER: Columns = ["state", "priority", "language", "min_tier", sa.text(f"{LENGTH_MS} DESC"), "path", "start_ms"]


def upgrade() -> None:
    op.drop_index("ix_task_length", "task")
    op.create_index("ix_task_length", "task", [*AFTER, "duration_ms", "end_ms"])


def downgrade() -> None:
    op.drop_index("ix_task_length", "task")
    op.create_index("ix_task_length", "task", BEFORE)
