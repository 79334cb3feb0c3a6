"""Engine creation. SQLite-specific settings live here and nowhere else."""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: threads still queue; processes fall back to SQLite's busy handler
    fcntl = None

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine

from . import models  # noqa: F401  (registers the tables)


def make_engine(url: str, sqlite_synchronous: str = "FULL") -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)

    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" below issue BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed (acknowledged) transaction survives power loss too, not only a crash.
        cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Take the write lock up front: read-then-write transactions never hit SQLITE_BUSY mid-way,
        # and claims are serialised, so no task is ever handed to two clients.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def init_db(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


@contextmanager
def _file_lock(thread_lock: threading.Lock, path: Path) -> Iterator[None]:
    with thread_lock, open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def write_lock(engine: Engine):
    """What every transaction holds first, so SQLite writers queue instead of polling.

    SQLite allows one writer; its busy handler retries with sleeps of up to 100 ms, which wrecks
    latency under load. Threads queue on a lock, and processes (WORKERS > 1) on an flock beside
    the database file, both of which wake the next waiter at once.
    """
    if engine.dialect.name != "sqlite":
        return lambda: nullcontext()
    thread_lock = threading.Lock()
    database = engine.url.database
    if fcntl is None or not database or database == ":memory:":
        return lambda: thread_lock
    path = Path(database).with_suffix(".writelock")
    return lambda: _file_lock(thread_lock, path)
