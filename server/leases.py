"""Every task and lease state transition, and all the SQL behind them.

Routes and the CLI call `Ledger` methods; nothing else touches the database. Each method is one
transaction. On SQLite every transaction starts with BEGIN IMMEDIATE (see db.py), which
serialises writers; on PostgreSQL the claim re-checks the row's state in its UPDATE, so two
servers never grant the same task twice either.

Task life: queued -> leased -> done | (failed after MAX_ATTEMPTS) ; missing when the file vanishes.
Expired leases are reclaimed lazily at the next claim (and by the periodic sweep), so no
background job is needed for correctness.
"""

from __future__ import annotations

import json
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence

from sqlalchemy import Float, bindparam, case, func, insert, or_, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from .db import write_lock
from .events import EventLog
from .models import Attempt, AttemptState, Client, Task, TaskState


class LedgerError(Exception):
    status = 400


class NotFound(LedgerError):
    status = 404


class LeaseLost(LedgerError):
    """The lease expired and was handed on, or the task was finished by someone else."""

    status = 409


@dataclass(frozen=True)
class FoundFile:
    """A file seen by the scanner."""

    task_id: str
    path: str
    result_stem: str
    language: str
    size: int
    mtime: float
    has_result: bool


@dataclass(frozen=True)
class Grant:
    task_id: str
    token: str
    path: str
    language: str
    size: int
    sha256: Optional[str]
    deadline: float
    attempt: int


@dataclass(frozen=True)
class TaskView:
    id: str
    path: str
    result_stem: str
    language: str
    state: str
    attempts: int
    size: int
    sha256: Optional[str]
    last_error: Optional[str]
    audio_seconds: Optional[float]
    updated_at: float
    done_at: Optional[float]
    mtime: float

    @classmethod
    def of(cls, t: Task) -> "TaskView":
        return cls(*(getattr(t, col.key) for col in TASK_COLS))


# --- the hot paths' SQL, built once (building SQLAlchemy statements per call cost more than running them)
T, A, C = Task.__table__, Attempt.__table__, Client.__table__
TASK_COLS = (T.c.id, T.c.path, T.c.result_stem, T.c.language, T.c.state, T.c.attempts, T.c.size,
             T.c.sha256, T.c.last_error, T.c.audio_seconds, T.c.updated_at, T.c.done_at, T.c.mtime)
ATTEMPT_COLS = (A.c.id, A.c.task_id, A.c.client, A.c.state, A.c.deadline)
_now = bindparam("now", type_=Float)

SQL_EXPIRE = (update(A).where(A.c.state == AttemptState.ACTIVE, A.c.deadline < _now)
              .values(state=AttemptState.EXPIRED, finished_at=_now).returning(A.c.task_id, A.c.client))
SQL_BUSY = select(A.c.id).where(A.c.task_id == bindparam("tid"), A.c.state == AttemptState.ACTIVE).limit(1)

def _requeue(last_error):
    return (update(T).where(T.c.id == bindparam("tid"), T.c.state == TaskState.LEASED).values(
        state=case((T.c.attempts >= bindparam("max_attempts"), TaskState.FAILED), else_=TaskState.QUEUED),
        last_error=last_error, updated_at=_now))


SQL_REQUEUE_FAILED = _requeue(bindparam("error"))
# An expiry says less than a real error ("cannot decode ..."): keep the real one if there is one.
SQL_REQUEUE_EXPIRED = _requeue(func.coalesce(T.c.last_error, bindparam("error")))
SQL_NOTE_ERROR = (update(T).where(T.c.id == bindparam("tid"), T.c.state.in_([TaskState.QUEUED, TaskState.FAILED]))
                  .values(last_error=bindparam("error")))
SQL_TASK_STATE = select(T.c.state).where(T.c.id == bindparam("tid"))
SQL_TOUCH_CLIENT = update(C).where(C.c.name == bindparam("cname")).values(capabilities=bindparam("caps"), last_seen=_now)
SQL_NEW_CLIENT = insert(C)
# PostgreSQL: concurrent claims skip rows another transaction is taking (SQLite ignores this).
SQL_PICK = (select(T.c.id).where(T.c.state == TaskState.QUEUED).order_by(T.c.path).limit(1)
            .with_for_update(skip_locked=True))
SQL_PICK_LANG = (select(T.c.id).where(T.c.state == TaskState.QUEUED, T.c.language.in_(bindparam("langs", expanding=True)))
                 .order_by(T.c.path).limit(1).with_for_update(skip_locked=True))
SQL_TAKE = (update(T).where(T.c.id == bindparam("tid"), T.c.state == TaskState.QUEUED)
            .values(state=TaskState.LEASED, attempts=T.c.attempts + 1, updated_at=_now)
            .returning(T.c.path, T.c.language, T.c.size, T.c.sha256, T.c.attempts))
SQL_GRANT = insert(A)
# A lease handed back unfinished (released, or its file changed) does not use up an attempt.
SQL_GIVE_BACK = (update(T).where(T.c.id == bindparam("tid"), T.c.state == TaskState.LEASED)
                 .values(state=TaskState.QUEUED, attempts=T.c.attempts - 1, updated_at=_now))
SQL_HEARTBEAT = (update(A).where(A.c.token == bindparam("tok"), A.c.state == AttemptState.ACTIVE)
                 .values(deadline=bindparam("dl"), heartbeat_at=_now,
                         progress=func.coalesce(bindparam("prog", type_=Float), A.c.progress))
                 .returning(A.c.task_id))
SQL_ATTEMPT_STATE = select(A.c.state).where(A.c.token == bindparam("tok"))
SQL_ATTEMPT = select(*ATTEMPT_COLS).where(A.c.token == bindparam("tok"))
SQL_TASK = select(*TASK_COLS).where(T.c.id == bindparam("tid"))
SQL_DONE = update(T).where(T.c.id == bindparam("tid")).values(
    state=TaskState.DONE, done_at=_now, updated_at=_now, last_error=None,
    audio_seconds=func.coalesce(bindparam("secs", type_=Float), T.c.audio_seconds))
SQL_ATTEMPT_DONE = update(A).where(A.c.id == bindparam("aid")).values(state=AttemptState.COMPLETED, finished_at=_now)
SQL_SUPERSEDE = (update(A).where(A.c.task_id == bindparam("tid"), A.c.state == AttemptState.ACTIVE)
                 .values(state=AttemptState.SUPERSEDED, finished_at=_now))
SQL_CLIENT_DONE = update(C).where(C.c.name == bindparam("cname")).values(tasks_done=C.c.tasks_done + 1, last_seen=_now)


@dataclass(frozen=True)
class Completion:
    task: TaskView
    duplicate: bool  # the task was already done: nothing changed
    late: bool  # the lease had expired, but the result was still accepted
    attempt: int


@dataclass(frozen=True)
class ScanReport:
    added: int = 0
    changed: int = 0
    missing: int = 0
    returned: int = 0


@dataclass(frozen=True)
class Stats:
    counts: dict[str, int]
    seconds_done: float
    bytes_done: int
    bytes_left: int
    active_clients: list[str]
    active_leases: int


class Ledger:
    def __init__(self, engine: Engine, *, lease_seconds: int, legacy_lease_seconds: int,
                 max_attempts: int, events: EventLog, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.lease_seconds = lease_seconds
        self.legacy_lease_seconds = legacy_lease_seconds
        self.max_attempts = max_attempts
        self.events = events
        self.clock = clock
        self._write_lock = write_lock(engine)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._write_lock(), Session(self.engine, expire_on_commit=False) as s:
            with s.begin():
                yield s

    @contextmanager
    def _cx(self) -> Iterator[Connection]:
        """A plain connection in one transaction, for the hot paths."""
        with self._write_lock(), self.engine.begin() as c:
            yield c

    # --- leasing -------------------------------------------------------------------------

    def claim(self, client: str, *, protocol: str = "v1", languages: Optional[Sequence[str]] = None,
              capabilities: Optional[dict] = None) -> Optional[Grant]:
        """Grant the next queued task to `client`, or None when nothing fits."""
        now = self.clock()
        seconds = self.lease_seconds if protocol == "v1" else self.legacy_lease_seconds
        with self._cx() as c:
            expired = self._expire_due(c, now)
            if capabilities is not None:
                self._touch_client(c, client, now, capabilities)
            grant = None
            for _ in range(8):  # a lost race (PostgreSQL, several servers) just tries the next task
                if languages is None:
                    task_id = c.execute(SQL_PICK).scalar()
                else:
                    task_id = c.execute(SQL_PICK_LANG, {"langs": list(languages)}).scalar()
                if task_id is None:
                    break
                row = c.execute(SQL_TAKE, {"tid": task_id, "now": now}).first()
                if row is None:
                    continue
                token = secrets.token_urlsafe(24)
                c.execute(SQL_GRANT, {"task_id": task_id, "client": client, "protocol": protocol, "token": token,
                                      "state": AttemptState.ACTIVE, "granted_at": now, "deadline": now + seconds})
                grant = Grant(task_id, token, row.path, row.language, row.size, row.sha256, now + seconds, row.attempts)
                break
        self._log_expired(expired)
        if grant:
            self.events.emit("granted", task=grant.task_id, client=client, protocol=protocol,
                             attempt=grant.attempt, deadline=round(grant.deadline, 3))
        return grant

    def heartbeat(self, token: str, progress: Optional[float] = None) -> float:
        """Extend a live lease; returns the new deadline. LeaseLost means: stop working on it."""
        now = self.clock()
        deadline = now + self.lease_seconds
        prog = None if progress is None else max(0.0, min(100.0, progress))
        with self._cx() as c:
            task_id = c.execute(SQL_HEARTBEAT, {"tok": token, "dl": deadline, "now": now, "prog": prog}).scalar()
            if task_id is None:
                state = c.execute(SQL_ATTEMPT_STATE, {"tok": token}).scalar()
                if state is None:
                    raise NotFound("unknown lease token")
                raise LeaseLost(f"lease is {state}: stop working on this task")
        self.events.emit("extended", task=task_id, progress=progress, deadline=round(deadline, 3))
        return deadline

    def complete(self, token: str, write_result: Callable[[TaskView], None],
                 audio_seconds: Optional[float] = None) -> Completion:
        """Accept a result for the lease `token`.

        `write_result` runs inside the transaction, so two results racing for one task never
        interleave their files, and the task is marked done only once its files are on disk.
        """
        now = self.clock()
        with self._cx() as c:
            attempt = c.execute(SQL_ATTEMPT, {"tok": token}).first()
            if attempt is None:
                raise NotFound("unknown lease token")
            completion = self._complete(c, attempt, write_result, audio_seconds, now)
        self._log_completion(completion, attempt.client)
        return completion

    def complete_legacy(self, task_id: str, write_result: Callable[[TaskView], None]) -> Completion:
        """Legacy clients name only the task: credit its newest attempt, live or not."""
        now = self.clock()
        with self._cx() as c:
            task = self._task_row(c, task_id)
            attempt = c.execute(select(*ATTEMPT_COLS).where(Attempt.task_id == task_id)
                                .order_by(Attempt.id.desc()).limit(1)).first()
            if attempt is None:
                if task.state == TaskState.DONE:
                    return Completion(task, True, False, 0)
                raise LeaseLost(f"task {task_id} was never handed out")
            completion = self._complete(c, attempt, write_result, None, now)
        self._log_completion(completion, attempt.client)
        return completion

    def fail(self, token: str, error: str, stderr_tail: Optional[str] = None,
             retryable: Optional[bool] = None) -> TaskView:
        """Record a failed attempt; the task is retried until MAX_ATTEMPTS attempts have failed."""
        now = self.clock()
        with self._cx() as c:
            attempt = c.execute(SQL_ATTEMPT, {"tok": token}).first()
            if attempt is None:
                raise NotFound("unknown lease token")
            view = self._fail(c, attempt, error, stderr_tail, retryable, now)
        self.events.emit("failed", task=view.id, client=attempt.client, error=error[:200],
                         retryable=retryable, task_state=view.state, attempts=view.attempts)
        return view

    def fail_legacy(self, task_id: str, error: str = "reported by a legacy client") -> TaskView:
        now = self.clock()
        with self._cx() as c:
            task = self._task_row(c, task_id)
            attempt = c.execute(select(*ATTEMPT_COLS).where(Attempt.task_id == task_id,
                                                            Attempt.state == AttemptState.ACTIVE)
                                .order_by(Attempt.id.desc()).limit(1)).first()
            if attempt is None:  # nothing in flight: a stale or repeated report changes nothing
                return task
            view = self._fail(c, attempt, error, None, None, now)
        self.events.emit("failed", task=view.id, client=attempt.client, error=error,
                         task_state=view.state, attempts=view.attempts)
        return view

    def release(self, token: str) -> TaskView:
        """The client gives the task back unfinished (volunteer stopped it): no attempt is used up."""
        now = self.clock()
        with self._cx() as c:
            task_id = c.execute(update(Attempt).where(Attempt.token == token, Attempt.state == AttemptState.ACTIVE)
                                .values(state=AttemptState.RELEASED, finished_at=now)
                                .returning(Attempt.task_id)).scalar()
            if task_id is None:
                raise NotFound("no active lease with that token")
            if c.execute(SQL_BUSY, {"tid": task_id}).first() is None:
                c.execute(SQL_GIVE_BACK, {"tid": task_id, "now": now})
            view = self._task_row(c, task_id)
        self.events.emit("released", task=task_id)
        return view

    def file_changed(self, task_id: str, size: int, mtime: float) -> None:
        """The file was replaced after it was leased: record it, and hand every lease back unused."""
        now = self.clock()
        with self._cx() as c:
            released = c.execute(update(Attempt).where(Attempt.task_id == task_id, Attempt.state == AttemptState.ACTIVE)
                                 .values(state=AttemptState.RELEASED, finished_at=now)).rowcount
            c.execute(update(Task).where(Task.id == task_id).values(size=size, mtime=mtime, sha256=None))
            if released:
                c.execute(SQL_GIVE_BACK, {"tid": task_id, "now": now})
        self.events.emit("changed", task=task_id, size=size)

    def expire_due(self) -> int:
        """Reclaim expired leases now (the periodic sweep; claims also do this)."""
        with self._cx() as c:
            expired = self._expire_due(c, self.clock())
        self._log_expired(expired)
        return len(expired)

    # --- operator actions ----------------------------------------------------------------

    def requeue(self, task_ids: Iterable[str] = (), failed: bool = False) -> list[str]:
        """Put failed (or named done/failed) tasks back in the queue with a fresh attempt budget."""
        now = self.clock()
        ids = list(task_ids)
        with self._tx() as s:
            q = select(Task).where(Task.state.in_([TaskState.FAILED, TaskState.DONE, TaskState.QUEUED]))
            if ids:
                q = q.where(Task.id.in_(ids))
            elif failed:
                q = q.where(Task.state == TaskState.FAILED)
            else:
                return []
            tasks = list(s.exec(q))
            missing = set(ids) - {t.id for t in tasks}
            if missing:
                raise NotFound(f"no such task (or it is leased or missing): {', '.join(sorted(missing))}")
            for t in tasks:
                t.state, t.attempts, t.last_error, t.done_at, t.updated_at = TaskState.QUEUED, 0, None, None, now
                s.add(t)
        for t in tasks:
            self.events.emit("requeued", task=t.id)
        return [t.id for t in tasks]

    def sync_files(self, found: Iterable[FoundFile], complete_scan: bool = True) -> ScanReport:
        """Bring the task table in line with what the scanner saw on disk."""
        now = self.clock()
        added = changed = missing = returned = 0
        def fresh_start(size: int) -> tuple[str, Optional[str]]:
            # An empty file has nothing to hand out: say so at once instead of failing N times.
            return (TaskState.FAILED, "empty file (0 bytes)") if size == 0 else (TaskState.QUEUED, None)

        with self._tx() as s:
            known = {t.id: t for t in s.exec(select(Task))}
            seen: set[str] = set()
            for f in found:
                seen.add(f.task_id)
                t = known.get(f.task_id)
                if t is None:
                    state, error = (TaskState.DONE, None) if f.has_result else fresh_start(f.size)
                    s.add(Task(id=f.task_id, path=f.path, result_stem=f.result_stem, language=f.language,
                               size=f.size, mtime=f.mtime, state=state, last_error=error, created_at=now,
                               updated_at=now, done_at=now if f.has_result else None))
                    added += 1
                    continue
                before = (t.state, t.size, t.mtime, t.language)
                if t.state == TaskState.MISSING:
                    t.state = TaskState.DONE if t.done_at else TaskState.QUEUED
                    returned += 1
                if (t.size, t.mtime) != (f.size, f.mtime):
                    # Replaced by different content. A finished task keeps its result (requeue it
                    # to redo); an unfinished one starts over with the new file.
                    t.size, t.mtime, t.sha256 = f.size, f.mtime, None
                    if t.state in (TaskState.QUEUED, TaskState.FAILED):
                        (t.state, t.last_error), t.attempts = fresh_start(f.size), 0
                    changed += 1
                t.language = f.language
                if (t.state, t.size, t.mtime, t.language) != before:  # a rescan rewrites only what changed
                    t.updated_at = now
                    s.add(t)
            if complete_scan:
                for t in known.values():
                    if t.id not in seen and t.state != TaskState.MISSING:
                        t.state, t.updated_at = TaskState.MISSING, now
                        s.add(t)
                        missing += 1
        return ScanReport(added, changed, missing, returned)

    def unhashed(self, limit: int = 1000) -> list[TaskView]:
        with self._tx() as s:
            rows = s.exec(select(Task).where(Task.sha256.is_(None), Task.state != TaskState.MISSING)
                          .order_by(Task.path).limit(limit))
            return [TaskView.of(t) for t in rows]

    def set_hash(self, task_id: str, size: int, sha256: str) -> None:
        """Record a file's checksum, unless the file changed again since it was read."""
        with self._tx() as s:
            s.execute(update(Task).where(Task.id == task_id, Task.size == size).values(sha256=sha256))

    def mark_missing(self, task_id: str) -> None:
        with self._tx() as s:
            s.execute(update(Task).where(Task.id == task_id, Task.state != TaskState.DONE)
                      .values(state=TaskState.MISSING, updated_at=self.clock()))

    # --- reading -------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskView:
        with self._tx() as s:
            t = s.get(Task, task_id)
            if t is None:
                raise NotFound(f"unknown task id {task_id!r}")
            return TaskView.of(t)

    def lease_task(self, token: str) -> TaskView:
        """The task behind a lease the holder may still use (to download its audio)."""
        with self._cx() as c:
            attempt = c.execute(SQL_ATTEMPT, {"tok": token}).first()
            if attempt is None:
                raise NotFound("unknown lease token")
            if attempt.state != AttemptState.ACTIVE:
                raise LeaseLost(f"lease is {attempt.state}")
            return self._task_row(c, attempt.task_id)

    def tasks(self, state: Optional[str] = None, limit: int = 1000, offset: int = 0) -> list[TaskView]:
        with self._tx() as s:
            q = select(Task)
            if state:
                q = q.where(Task.state == state)
            return [TaskView.of(t) for t in s.exec(q.order_by(Task.path).offset(offset).limit(limit))]

    def stats(self, active_window: float = 900.0) -> Stats:
        now = self.clock()
        with self._tx() as s:
            counts = {state: 0 for state in TaskState.ALL}
            counts.update({st: n for st, n in s.execute(select(Task.state, func.count()).group_by(Task.state))})
            seconds_done, bytes_done = s.execute(
                select(func.coalesce(func.sum(Task.audio_seconds), 0.0), func.coalesce(func.sum(Task.size), 0))
                .where(Task.state == TaskState.DONE)).one()
            bytes_left = s.execute(select(func.coalesce(func.sum(Task.size), 0))
                                   .where(Task.state.in_([TaskState.QUEUED, TaskState.LEASED]))).scalar_one()
            clients = list(s.exec(select(Attempt.client).where(
                or_(Attempt.granted_at > now - active_window, Attempt.heartbeat_at > now - active_window))
                .distinct().order_by(Attempt.client)))
            active = s.execute(select(func.count()).select_from(Attempt)
                               .where(Attempt.state == AttemptState.ACTIVE)).scalar_one()
        return Stats(counts, float(seconds_done), int(bytes_done), int(bytes_left), clients, int(active))

    # --- internals -----------------------------------------------------------------------

    @staticmethod
    def _task_row(c: Connection, task_id: str) -> TaskView:
        row = c.execute(SQL_TASK, {"tid": task_id}).first()
        if row is None:
            raise NotFound(f"unknown task id {task_id!r}")
        return TaskView(*row)

    def _complete(self, c: Connection, attempt, write_result: Callable[[TaskView], None],
                  audio_seconds: Optional[float], now: float) -> Completion:
        task = self._task_row(c, attempt.task_id)
        if task.state == TaskState.DONE:
            return Completion(task, True, False, task.attempts)
        late = attempt.state != AttemptState.ACTIVE or attempt.deadline < now
        write_result(task)
        c.execute(SQL_DONE, {"tid": task.id, "now": now, "secs": audio_seconds})
        c.execute(SQL_ATTEMPT_DONE, {"aid": attempt.id, "now": now})
        # Anyone else still working on it should stop at their next heartbeat.
        c.execute(SQL_SUPERSEDE, {"tid": task.id, "now": now})
        c.execute(SQL_CLIENT_DONE, {"cname": attempt.client, "now": now})
        return Completion(self._task_row(c, task.id), False, late, task.attempts)

    def _fail(self, c: Connection, attempt, error: str, stderr_tail: Optional[str],
              retryable: Optional[bool], now: float) -> TaskView:
        was_active = attempt.state == AttemptState.ACTIVE
        c.execute(update(Attempt).where(Attempt.id == attempt.id).values(
            state=AttemptState.FAILED if was_active else attempt.state, error=error, stderr_tail=stderr_tail,
            retryable=retryable, finished_at=now))
        # A report from a lease that already expired is kept on the attempt only: the task may
        # have been handed to someone else meanwhile.
        full_error = error if not stderr_tail else f"{error}\n{stderr_tail}"
        if was_active:
            self._requeue_if_idle(c, attempt.task_id, full_error, now)
        else:  # too late to count, but what went wrong is still worth showing on an unfinished task
            c.execute(SQL_NOTE_ERROR, {"tid": attempt.task_id, "error": full_error})
        c.execute(update(Client).where(Client.name == attempt.client)
                  .values(tasks_failed=Client.tasks_failed + 1, last_seen=now))
        return self._task_row(c, attempt.task_id)

    def _requeue_if_idle(self, c: Connection, task_id: str, error: str, now: float, expired: bool = False) -> None:
        """After an attempt ends unsuccessfully: back to the queue, or failed once attempts are used up."""
        if c.execute(SQL_BUSY, {"tid": task_id}).first() is None:
            c.execute(SQL_REQUEUE_EXPIRED if expired else SQL_REQUEUE_FAILED,
                      {"tid": task_id, "max_attempts": self.max_attempts, "error": error, "now": now})

    def _expire_due(self, c: Connection, now: float) -> list[tuple[str, str, str]]:
        due = c.execute(SQL_EXPIRE, {"now": now}).all()
        out = []
        for task_id, client in due:
            self._requeue_if_idle(c, task_id, f"lease expired (client {client} went silent)", now, expired=True)
            out.append((task_id, client, c.execute(SQL_TASK_STATE, {"tid": task_id}).scalar()))
        return out

    @staticmethod
    def _touch_client(c: Connection, name: str, now: float, capabilities: dict) -> None:
        caps = json.dumps(capabilities, sort_keys=True)
        if not c.execute(SQL_TOUCH_CLIENT, {"cname": name, "caps": caps, "now": now}).rowcount:
            c.execute(SQL_NEW_CLIENT, {"name": name, "capabilities": caps, "first_seen": now, "last_seen": now,
                                       "tasks_done": 0, "tasks_failed": 0})

    def _log_expired(self, expired: list[tuple[str, str, str]]) -> None:
        for task_id, client, state in expired:
            self.events.emit("expired", task=task_id, client=client, task_state=state)

    def _log_completion(self, c: Completion, client: str) -> None:
        self.events.emit("duplicate" if c.duplicate else "completed", task=c.task.id, client=client,
                         late=c.late, attempt=c.attempt)
