"""Long files as parts: cutting a file's record into part tasks, undoing that, and knowing when
every part is done so the file can be stitched.

A part is an ordinary task for leases, attempts, errors and requeue (leases.py). This module owns
only what concerns a file and its parts together. How the cuts are chosen is the splitter's
business (server/parts/plan.py); how results are joined, server/parts/stitch.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from .database import Database
from .events import Event, EventLog
from .sql import catalogue as sql_catalogue
from .sql import parts as sql_parts
from .sql.run import Tx
from .states import TaskState
from .values import PartView, PlannedPart, TaskView, task_id_for


def drop_parts(c: Tx, file_id: str) -> None:
    """Forget a file's parts and their attempts (their holders get 404 at the next heartbeat)."""
    c.execute(sql_parts.drop_part_attempts, {"fid": file_id})
    c.execute(sql_parts.drop_parts, {"fid": file_id})


class Parts:
    def __init__(self, db: Database, events: EventLog, clock: Callable[[], float]):
        self.db = db
        self.events = events
        self.clock = clock

    def to_split(self, split_ms: int, limit: int = 100) -> list[TaskView]:
        """Probed files longer than `split_ms` that nobody has started."""
        with self.db.reading() as c:
            rows = c.execute(sql_parts.files_to_split, {"split_ms": split_ms, "limit": limit})
            return [TaskView.from_row(r) for r in rows]

    def split(self, file: TaskView, size: int, duration_ms: int, split_ms: int, plan: Sequence[PlannedPart]) -> bool:
        """Turn a queued, unstarted file into parts. False (and nothing changed) if it was taken or
        changed meanwhile: a file already handed out whole stays whole."""
        now = self.clock()
        with self.db.writing() as c:
            taken = c.execute(
                sql_parts.take_file_for_split,
                {"tid": file.id, "probed_size": size, "split_ms": split_ms, "duration_ms": duration_ms, "now": now},
            ).rowcount
            if not taken:
                return False
            ids = [task_id_for(file.path, p.start_ms, p.end_ms, p.track) for p in plan]
            c.execute(
                sql_catalogue.insert_task,
                [
                    {
                        "id": part_id,
                        "path": file.path,
                        "result_stem": f"{file.id}/{part_id}",  # under RESULTS_DIR/.parts/ until stitched
                        "parent_id": file.id,
                        "start_ms": p.start_ms,
                        "end_ms": p.end_ms,
                        "note": p.note,
                        "stream": p.stream,
                        "channel": p.channel,
                        "speaker": p.speaker,
                        "speakers": file.speakers,
                        "duration_ms": duration_ms,
                        "language": file.language,
                        "size": size,
                        "mtime": file.mtime,
                        "sha256": file.sha256,
                        "state": TaskState.QUEUED.value,
                        "attempts": 0,
                        "job_id": file.job_id,  # an uploaded job's parts are the job's too
                        "priority": file.priority,
                        "min_tier": file.min_tier,
                        "translate": file.translate,
                        "prompt": file.prompt,
                        "temperature": file.temperature,
                        "validate_all": file.validate_all,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for part_id, p in zip(ids, plan, strict=True)
                ],
            )
        speakers = len({p.speaker for p in plan if p.speaker is not None})
        self.events.emit(Event.SPLIT, task=file.id, parts=len(plan), split_seconds=split_ms // 1000, speakers=speakers)
        return True

    def stale(self, split_ms: int) -> list[str]:
        """Split files cut for another SPLIT_SECONDS (0: splitting is now off) that nobody has started."""
        with self.db.reading() as c:
            return list(c.execute(sql_parts.stale_splits, {"split_ms": split_ms}).scalars())

    def unsplit(self, file_id: str, split_ms: int) -> bool:
        """Make a stale split file whole and queued again (the next split pass cuts it anew)."""
        with self.db.writing() as c:
            if c.execute(sql_parts.stale_split_by_id, {"tid": file_id, "split_ms": split_ms}).first() is None:
                return False  # someone started a part meanwhile: keep the plan
            drop_parts(c, file_id)
            c.execute(sql_parts.unsplit_file, {"tid": file_id, "now": self.clock()})
        self.events.emit(Event.UNSPLIT, task=file_id)
        return True

    def of(self, file_id: str) -> list[PartView]:
        with self.db.reading() as c:
            return [PartView.from_row(r) for r in c.execute(sql_parts.parts_of_file, {"fid": file_id})]

    def ready(self) -> list[str]:
        """Split files whose every part is done: to stitch (again, after a crash mid-stitch)."""
        with self.db.reading() as c:
            return list(c.execute(sql_parts.files_ready_to_stitch).scalars())

    def mark_stitched(self, file_id: str, audio_seconds: float) -> bool:
        """The file's results are on disk: it is done. False if it was not waiting to be stitched."""
        with self.db.writing() as c:
            done = c.execute(
                sql_parts.mark_file_stitched, {"tid": file_id, "audio_seconds": audio_seconds, "now": self.clock()}
            ).rowcount
        if done:
            self.events.emit(Event.STITCHED, task=file_id)
        return bool(done)

    def progress(self, file_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        """file id -> (parts done, parts), for the files among `file_ids` that have parts."""
        ids = list(file_ids)
        if not ids:
            return {}
        with self.db.reading() as c:
            return {fid: (int(done), int(n)) for fid, n, done in c.execute(sql_parts.file_progress, {"ids": ids})}
