"""Who may do what: API tokens with roles (stored as digests), each job's owner, a job's own
callback signing secret, and the key that lets a retried OpenAI-style request follow its job; what
such a request asks of whisper (translate, prompt, temperature); why a host paused a lease's work,
and whose credentials leased it (the volunteers' credit).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principal",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    # Jobs from before have no owner: admins (and a server behind Caddy alone) still see them.
    op.add_column("job", sa.Column("owner", sa.String(length=128), nullable=True))
    op.add_column("job", sa.Column("callback_secret", sa.String(length=64), nullable=True))
    op.add_column("job", sa.Column("request_key", sa.String(length=64), nullable=True))
    op.create_index("ix_job_owner", "job", ["owner"])
    op.create_index("ix_job_request_key", "job", ["request_key"])
    op.add_column("task", sa.Column("translate", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("task", sa.Column("prompt", sa.String(), nullable=True))
    op.add_column("task", sa.Column("temperature", sa.Float(), nullable=True))
    op.add_column("attempt", sa.Column("paused", sa.String(), nullable=True))
    op.add_column("attempt", sa.Column("principal", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("principal")
        batch.drop_column("paused")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("temperature")
        batch.drop_column("prompt")
        batch.drop_column("translate")
    op.drop_index("ix_job_request_key", "job")
    op.drop_index("ix_job_owner", "job")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("request_key")
        batch.drop_column("callback_secret")
        batch.drop_column("owner")
    op.drop_table("principal")
