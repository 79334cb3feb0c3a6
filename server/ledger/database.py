"""Connections to the ledger's database: one way to write, one way to read.

SQLite-specific settings live here and nowhere else. SQLite allows one writer: every write
transaction starts with BEGIN IMMEDIATE (so a read-then-write never hits SQLITE_BUSY half-way and
claims are serialised) after queueing on a lock; reads take a plain snapshot and no lock.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any, Optional

try:
    import fcntl
except ImportError:  # Windows: threads still queue; processes fall back to SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import create_engine

from .errors import MigrationError
from .sql.run import Tx

_READ = "batch_stt_read"  # execution option marking a read-only transaction
_NORMAL = 1  # PRAGMA synchronous: OFF 0, NORMAL 1, FULL 2, EXTRA 3


def _with_driver(url: str) -> str:
    """`postgresql://` means whichever driver is installed (SQLAlchemy 2.1 would insist on psycopg 3)."""
    if not url.startswith("postgresql://"):
        return url
    for module, scheme in (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")):
        if importlib.util.find_spec(module):
            return scheme + url[len("postgresql") :]
    raise MigrationError(
        "DATABASE_URL is a PostgreSQL URL but no driver is installed: pip install 'batch-stt[server,postgres]'"
    )


def make_engine(url: str, sqlite_synchronous: str = "FULL") -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(_with_driver(url), pool_pre_ping=True, pool_size=10, max_overflow=20)

    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=8, max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let the "begin" hook below issue BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed (acknowledged) transaction survives power loss too, not only a crash.
        cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        # The default 2 MB page cache held too little of a large ledger: a lease -> result cycle
        # re-read 24 pages with a syscall each (10,000 hosts, 30,000 tasks); with 64 MB of cache
        # and the file mapped, 5.
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute("PRAGMA mmap_size=268435456")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: exec_driver_sql's bookkeeping cost more than the BEGIN itself.
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.execute("BEGIN" if conn.get_execution_options().get(_READ) else "BEGIN IMMEDIATE")

    return engine


class _FileLock:
    """This process's threads queue on a lock, then on an flock of a file beside the database.

    The file stays open (an open and a close per transaction cost more than the flock): one per
    process, opened again after a fork, since a forked copy would share the lock with its parent.
    """

    def __init__(self, path: Path):
        self.path = path
        self.thread_lock = threading.Lock()
        self._file: Optional[tuple[int, IO[bytes]]] = None  # (pid, file)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.thread_lock:
            if self._file is None or self._file[0] != os.getpid():
                self._file = (os.getpid(), open(self.path, "a+b"))
            f = self._file[1]
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def close(self) -> None:
        with self.thread_lock:
            if self._file is not None:
                self._file[1].close()
                self._file = None


def _write_lock(engine: Engine) -> Callable[[], AbstractContextManager[Any]]:
    """What every write holds first, so SQLite writers queue instead of polling.

    SQLite's busy handler retries with sleeps of up to 100 ms, which wrecks latency under load.
    Threads queue on a lock, and processes (WORKERS > 1) on an flock beside the database file,
    both of which wake the next waiter at once. PostgreSQL needs neither.
    """
    if engine.dialect.name != "sqlite":
        return nullcontext
    database = engine.url.database
    if fcntl is None or not database or database == ":memory:":
        thread_lock = threading.Lock()
        return lambda: thread_lock
    return _FileLock(Path(database).with_suffix(".writelock"))


class Database:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._lock = _write_lock(engine)
        self._compiled: dict[Any, Any] = {}  # statement -> its SQL for this dialect (sql/run.py)
        # SQLite has one writer and the lock above serialises this process's writes: they share one
        # connection, kept open (the pool's checkout and reset cost as much as a claim's SQL).
        self._writer: Optional[Connection] = None
        self._synchronous: Optional[int] = None  # PRAGMA synchronous, as make_engine set it

    @contextmanager
    def writing(self, durable: bool = True) -> Iterator[Tx]:
        """One transaction that may write: committed on exit, rolled back on an exception.

        `durable=False`: its commit is not flushed to disk on its own but with the next durable one
        (SQLite's WAL is one file; PostgreSQL's synchronous_commit=off). For what a power cut may
        undo harmlessly: a grant, whose task is then simply handed out again; never a result.
        """
        with self._lock():
            if self.dialect != "sqlite":
                with self.engine.begin() as c:
                    if not durable:
                        c.exec_driver_sql("SET LOCAL synchronous_commit = off")
                    yield Tx(c, self._compiled)
                return
            if self._writer is None or self._writer.invalidated or self._writer.closed:
                self._writer = self.engine.connect()
            dbapi = self._writer.connection.dbapi_connection
            assert dbapi is not None
            if self._synchronous is None:
                self._synchronous = dbapi.execute("PRAGMA synchronous").fetchone()[0]
            relax = not durable and self._synchronous > _NORMAL
            if relax:
                dbapi.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._writer.begin():
                    yield Tx(self._writer, self._compiled)
            finally:
                if relax:
                    dbapi.execute(f"PRAGMA synchronous={self._synchronous}")

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A consistent snapshot for reads; never waits for writers."""
        with self.engine.connect() as c:
            c = c.execution_options(**{_READ: True})
            with c.begin():
                yield Tx(c, self._compiled)

    def dispose(self) -> None:
        with self._lock():
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        if isinstance(self._lock, _FileLock):
            self._lock.close()
        self.engine.dispose()
