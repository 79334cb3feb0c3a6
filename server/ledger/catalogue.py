"""The file catalogue: which tasks exist, kept in line with what is on disk, and the operator's
requeue. The scanner finds files; this decides what that means for each task."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from .database import Database
from .errors import NotFound
from .events import Event, EventLog
from .parts import drop_parts
from .sql import catalogue as sql_catalogue
from .sql import leases as sql_leases
from .sql import parts as sql_parts
from .sql import validation as sql_validation
from .sql.run import Tx
from .states import TaskState
from .values import FoundFile, ScanReport, TaskView

_SPLIT_UNFINISHED = (TaskState.SPLIT, TaskState.FAILED)


# Not started by anyone: a sidecar to fix holds it; fixed, it is queued again.
_WAITING = (TaskState.QUEUED, TaskState.HELD)


def _fresh_start(size: int) -> tuple[TaskState, Optional[str]]:
    # An empty file has nothing to hand out: say so at once instead of failing N times.
    return (TaskState.FAILED, "empty file (0 bytes)") if size == 0 else (TaskState.QUEUED, None)


def _hold(problem: Optional[str], state: TaskState, error: Optional[str]) -> tuple[TaskState, Optional[str]]:
    if problem and state in _WAITING:
        return TaskState.HELD, problem
    if state == TaskState.HELD:
        return TaskState.QUEUED, None
    return state, error


class Catalogue:
    def __init__(self, db: Database, events: EventLog, clock: Callable[[], float]):
        self.db = db
        self.events = events
        self.clock = clock

    def sync_files(self, found: Iterable[FoundFile], complete_scan: bool = True) -> ScanReport:
        """Bring the task table in line with what the scanner saw on disk; writes only what changed."""
        now = self.clock()
        added: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        unsplit: list[str] = []
        changed = returned = 0
        with self.db.writing() as c:
            known = {row.id: row for row in c.execute(sql_catalogue.catalogue)}
            seen: set[str] = set()
            for f in found:
                seen.add(f.task_id)
                row = known.get(f.task_id)
                if row is None:
                    added.append(_new_task(f, now))
                    continue
                update, replaced, back, drop = _seen_again(row, f, now)
                changed, returned = changed + replaced, returned + back
                if replaced and row.state == TaskState.CHECKING:  # its held results were of the old file
                    c.execute(sql_validation.drop_held, {"tid": row.id})
                if drop:
                    unsplit.append(row.id)
                if update is not None:
                    updates.append(update)
            missing = [
                {"tid": tid, "now": now}
                for tid, row in known.items()
                if complete_scan and tid not in seen and row.state != TaskState.MISSING
            ]
            # A vanished file's unfinished parts go too: if it comes back, it is probed and cut anew.
            gone_unfinished = [m for m in missing if known[m["tid"]].state in _SPLIT_UNFINISHED]
            if gone_unfinished:
                c.execute(sql_parts.forget_split, gone_unfinished)
            for file_id in unsplit + [m["tid"] for m in gone_unfinished]:
                drop_parts(c, file_id)
            if added:
                c.execute(sql_catalogue.insert_task, added)
            if updates:
                c.execute(sql_catalogue.update_task_from_scan, updates)
            if missing:
                c.execute(sql_catalogue.mark_task_vanished, missing)
        return ScanReport(len(added), changed, len(missing), returned)

    @staticmethod
    def _requeue_one(c: Tx, task_id: str, now: float) -> None:
        row = c.execute(sql_parts.requeue_view, {"tid": task_id}).one()
        if row.split_ms is not None and row.state != TaskState.DONE:  # failed (or reopened meanwhile)
            c.execute(sql_parts.requeue_failed_parts, {"fid": task_id, "now": now})
            c.execute(sql_parts.reopen_file, {"tid": task_id, "now": now})
            return
        if row.split_ms is not None:  # done: its parts' results are gone, so the whole file is redone
            drop_parts(c, task_id)
        c.execute(sql_catalogue.requeue_task, {"tid": task_id, "now": now})
        if row.parent_id:
            c.execute(sql_parts.reopen_file, {"tid": row.parent_id, "now": now})

    def file_changed(self, task_id: str, size: int, mtime: float) -> None:
        """The file was replaced after it was leased: record it, and hand every lease back unused.
        A split file's parts are dropped: the new file is probed and cut anew."""
        now = self.clock()
        with self.db.writing() as c:
            released = c.execute(sql_catalogue.release_attempts_of_task, {"tid": task_id, "now": now}).rowcount
            c.execute(sql_catalogue.record_file_change, {"tid": task_id, "size": size, "mtime": mtime})
            if released:
                c.execute(sql_leases.give_task_back, {"tid": task_id, "now": now})
            if c.execute(sql_parts.restart_split_file, {"tid": task_id, "now": now}).rowcount:
                drop_parts(c, task_id)
        self.events.emit(Event.CHANGED, task=task_id, size=size)

    def unhashed(self, limit: int = 1000) -> list[TaskView]:
        with self.db.reading() as c:
            return [TaskView.from_row(r) for r in c.execute(sql_catalogue.unhashed_tasks, {"limit": limit})]

    def unprobed(self, limit: int = 1000) -> list[TaskView]:
        with self.db.reading() as c:
            return [TaskView.from_row(r) for r in c.execute(sql_catalogue.unprobed_tasks, {"limit": limit})]

    def set_duration(self, task_id: str, size: int, duration_ms: int) -> None:
        """Record a file's length (0: ffprobe could not tell), unless the file changed since."""
        self.set_durations([(task_id, size, duration_ms)])

    def set_durations(self, probed: Sequence[tuple[str, int, int]]) -> None:
        """Many files' (task id, size probed, length) in one transaction: a fresh library is probed
        faster than one commit per file would allow."""
        if not probed:
            return
        with self.db.writing() as c:
            c.execute(
                sql_catalogue.set_task_duration, [{"tid": t, "probed_size": s, "duration_ms": d} for t, s, d in probed]
            )

    def set_hashes(self, hashed: Sequence[tuple[str, int, str]]) -> None:
        """Files' (task id, size read, SHA-256), unless a file changed again since it was read. Not
        flushed on its own: a checksum a power cut forgets is computed again, and the commit's flush
        held up every claim while a fresh library was checksummed."""
        if not hashed:
            return
        with self.db.writing(durable=False) as c:
            c.execute(sql_catalogue.set_task_hash, [{"tid": t, "hashed_size": s, "sha256": h} for t, s, h in hashed])

    def mark_missing(self, task_id: str) -> None:
        """The file is gone (a split file's unfinished parts with it); a rescan that finds it again requeues it."""
        now = self.clock()
        with self.db.writing() as c:
            if c.execute(sql_parts.forget_split, {"tid": task_id}).rowcount:
                drop_parts(c, task_id)
            c.execute(sql_catalogue.mark_task_missing, {"tid": task_id, "now": now})

    def requeue(self, task_ids: Iterable[str] = (), failed: bool = False) -> list[str]:
        """Put failed (or named done/failed/queued) tasks back in the queue with a fresh attempt budget.

        A split file that failed gets back only its unfinished parts; a done one starts over (its
        parts' results are gone once stitched), cut anew. A requeued part reopens its failed file.
        """
        ids = list(task_ids)
        if not ids and not failed:
            return []
        now = self.clock()
        with self.db.writing() as c:
            if ids:
                found = list(c.execute(sql_catalogue.requeueable_by_id, {"ids": ids}).scalars())
                unknown = set(ids) - set(found)
                if unknown:
                    raise NotFound(f"no such task (or it is leased or missing): {', '.join(sorted(unknown))}")
            else:
                found = list(c.execute(sql_catalogue.failed_tasks).scalars())
            for tid in found:
                self._requeue_one(c, tid, now)
        for tid in found:
            self.events.emit(Event.REQUEUED, task=tid)
        return found


def _new_task(f: FoundFile, now: float) -> dict[str, Any]:
    """A file seen for the first time. A result already there makes it done (the original server's rule)."""
    state, error = (TaskState.DONE, None) if f.has_result else _hold(f.problem, *_fresh_start(f.size))
    return {
        "id": f.task_id,
        "path": f.path,
        "result_stem": f.result_stem,
        "language": f.language,
        "size": f.size,
        "mtime": f.mtime,
        "state": state.value,
        "attempts": 0,
        "last_error": error,
        "created_at": now,
        "updated_at": now,
        "done_at": now if state == TaskState.DONE else None,
    }


def _seen_again(row: Any, f: FoundFile, now: float) -> tuple[Optional[dict[str, Any]], bool, bool, bool]:
    """A known file seen again: (its row's update, or None if nothing changed; the file was replaced;
    it came back from missing; the parts cut from the old file must go)."""
    new = {
        "tid": row.id,
        "state": row.state,
        "size": row.size,
        "mtime": row.mtime,
        "language": f.language,
        "sha256": row.sha256,
        "duration_ms": row.duration_ms,
        "split_ms": row.split_ms,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "now": now,
    }
    returned = row.state == TaskState.MISSING
    if returned:
        new["state"] = TaskState.DONE.value if row.done_at else TaskState.QUEUED.value
    replaced = (row.size, row.mtime) != (f.size, f.mtime)
    drop_parts = False
    if replaced:
        # A finished task keeps its result (requeue it to redo); an unfinished one starts over with the new file.
        new["size"], new["mtime"], new["sha256"], new["duration_ms"] = f.size, f.mtime, None, None
        if new["state"] in (TaskState.QUEUED, TaskState.FAILED, TaskState.SPLIT, TaskState.HELD, TaskState.CHECKING):
            state, new["last_error"] = _fresh_start(f.size)
            new["state"], new["attempts"] = state.value, 0
            if row.split_ms is not None:  # its parts were cut from the old file
                drop_parts = True
                new["split_ms"] = None
    if new["state"] in _WAITING:
        state, new["last_error"] = _hold(f.problem, TaskState(new["state"]), new["last_error"])
        new["state"] = state.value
    differs = replaced or (new["state"], new["language"], new["last_error"]) != (
        row.state,
        row.language,
        row.last_error,
    )
    return (new if differs else None), replaced, returned, drop_parts
