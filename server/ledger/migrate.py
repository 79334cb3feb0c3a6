"""Bringing a database to the schema this release needs (Alembic), and adopting 0.1 databases.

batch-stt 0.1 created its tables with create_all and kept no version: a database that has the
`task` table but no `alembic_version` is such a one, and is stamped with revision 0001 (exactly
0.1's schema) before upgrading. Runs at every start; two servers starting at once on PostgreSQL
queue on an advisory lock, on SQLite on BEGIN IMMEDIATE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .errors import MigrationError

RELEASE_0_1 = "0001"
_PG_LOCK = 0x62617463  # "batc": the advisory lock key for migrations


def _config(connection: Optional[Connection] = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> Optional[str]:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[Optional[str], str]:
    """Migrate to head; returns (revision before, revision after). MigrationError says why not."""
    try:
        with engine.begin() as c:
            if c.dialect.name == "postgresql":
                c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            before = current(c)
            tables = set(inspect(c).get_table_names())
            if before is None and "task" in tables:
                command.stamp(_config(c), RELEASE_0_1)  # a 0.1 database: adopt it
                before = RELEASE_0_1
            known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
            if before is not None and before not in known:
                raise MigrationError(
                    f"the database is at schema revision {before}, which this release does not "
                    "know: it was written by a newer batch-stt"
                )
            command.upgrade(_config(c), "head")
            return before, current(c) or ""
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise MigrationError(f"cannot bring the database to schema {head()}: {reason}") from None
