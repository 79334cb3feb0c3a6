"""Speakers from streams and channels: a part's audio stream or channel and its speaker's label, and
how a job asked its speakers to be found. Files that may hold several audio streams, queued whole
and not started, are probed again, so SPEAKERS (auto by default) applies to them too.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
# The containers a file with several audio streams comes in (server/disk/paths.py's MEDIA_EXTENSIONS).
MAY_HOLD_SEVERAL = ("mkv", "webm", "mp4", "m4a", "mov", "avi")


def upgrade() -> None:
    # Tasks from before are whole files or time parts: no speaker (None), the server's SPEAKERS.
    op.add_column("task", sa.Column("stream", sa.Integer(), nullable=True))
    op.add_column("task", sa.Column("channel", sa.Integer(), nullable=True))
    op.add_column("task", sa.Column("speaker", sa.String(), nullable=True))
    op.add_column("task", sa.Column("speakers", sa.String(length=16), nullable=True))
    task = sa.table(
        "task", *(sa.column(c) for c in ("path", "state", "attempts", "parent_id", "split_ms", "duration_ms"))
    )
    op.execute(
        task.update()
        .where(
            task.c.state == "queued",
            task.c.attempts == 0,
            task.c.parent_id.is_(None),
            task.c.split_ms.is_(None),
            task.c.duration_ms.is_not(None),
            sa.or_(*(sa.func.lower(task.c.path).like(f"%.{ext}") for ext in MAY_HOLD_SEVERAL)),
        )
        .values(duration_ms=None)
    )


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("speakers")
        batch.drop_column("speaker")
        batch.drop_column("channel")
        batch.drop_column("stream")
