"""Speakers from streams and channels: a part's audio stream or channel and its speaker's label, and
how a job asked its speakers to be found.

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


def upgrade() -> None:
    # Tasks from before are whole files or time parts: no speaker (None), the server's SPEAKERS.
    op.add_column("task", sa.Column("stream", sa.Integer(), nullable=True))
    op.add_column("task", sa.Column("channel", sa.Integer(), nullable=True))
    op.add_column("task", sa.Column("speaker", sa.String(), nullable=True))
    op.add_column("task", sa.Column("speakers", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("speakers")
        batch.drop_column("speaker")
        batch.drop_column("channel")
        batch.drop_column("stream")
