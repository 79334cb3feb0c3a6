"""Alembic environment: always run through server.ledger.migrate, on the connection it passes."""

from __future__ import annotations

from alembic import context

from server.ledger.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():  # inside migrate.py's transaction: committed there
    context.run_migrations()
