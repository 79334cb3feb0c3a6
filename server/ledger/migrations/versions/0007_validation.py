"""Results you can trust: a result may be held until another host's agrees (task `checking`, attempt
`pending` or `invalid`, states being plain strings), the tier a check should match, which attempts
were checks, a job's request to check every result, and each host's run of confirmed results.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task", sa.Column("validate_all", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("task", sa.Column("check_tier", sa.Integer(), nullable=True))
    op.add_column("attempt", sa.Column("checking", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("client", sa.Column("valid_streak", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("client", sa.Column("invalid_results", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.drop_column("invalid_results")
        batch.drop_column("valid_streak")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("checking")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("check_tier")
        batch.drop_column("validate_all")
