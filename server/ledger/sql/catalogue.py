"""The statements of the file catalogue: what a scan finds, checksums, lengths, operator requeues."""

from __future__ import annotations

from sqlalchemy import bindparam, case, insert, select, update

from ..states import AttemptState, TaskState
from ..tables import attempt, task
from .params import TASK_VIEW, now, tid

# --- the file catalogue ---------------------------------------------------------------------
release_attempts_of_task = (
    update(attempt)
    .where(attempt.c.task_id == tid, attempt.c.state == AttemptState.ACTIVE)
    .values(state=AttemptState.RELEASED, finished_at=now)
)
record_file_change = (
    update(task)
    .where(task.c.id == tid)
    .values(size=bindparam("size"), mtime=bindparam("mtime"), sha256=None, duration_ms=None)
)
# Files only: parts are the ledger's business, not the scanner's.
catalogue = select(
    task.c.id,
    task.c.state,
    task.c.size,
    task.c.mtime,
    task.c.language,
    task.c.done_at,
    task.c.attempts,
    task.c.last_error,
    task.c.sha256,
    task.c.duration_ms,
    task.c.split_ms,
).where(task.c.parent_id.is_(None), task.c.job_id.is_(None))  # uploaded jobs are not in AUDIO_DIR
insert_task = insert(task)
update_task_from_scan = (
    update(task)
    .where(task.c.id == tid)
    .values(
        state=bindparam("state"),
        size=bindparam("size"),
        mtime=bindparam("mtime"),
        language=bindparam("language"),
        sha256=bindparam("sha256"),
        duration_ms=bindparam("duration_ms"),
        split_ms=bindparam("split_ms"),
        attempts=bindparam("attempts"),
        last_error=bindparam("last_error"),
        updated_at=now,
    )
)
unhashed_tasks = (
    select(*TASK_VIEW)
    .where(task.c.sha256.is_(None), task.c.state != TaskState.MISSING, task.c.parent_id.is_(None))
    .order_by(task.c.path)
    .limit(bindparam("limit"))
)
unprobed_tasks = (
    select(*TASK_VIEW)
    .where(
        task.c.duration_ms.is_(None),
        task.c.state.not_in([TaskState.MISSING, TaskState.HELD]),  # held: probed (and cut) once released
        task.c.size > 0,
        task.c.parent_id.is_(None),
    )
    .order_by(task.c.path)
    .limit(bindparam("limit"))
)
# Unless the file changed again since it was probed.
set_task_duration = (
    update(task)
    .where(task.c.id == tid, task.c.size == bindparam("probed_size"))
    .values(duration_ms=bindparam("duration_ms"))
)
set_task_hash = (
    update(task).where(task.c.id == tid, task.c.size == bindparam("hashed_size")).values(sha256=bindparam("sha256"))
)
# A scan that no longer finds the file: done tasks too (they come back as done with the file).
mark_task_vanished = (
    update(task)
    .where(task.c.id == tid, task.c.state != TaskState.MISSING)
    .values(state=TaskState.MISSING, updated_at=now)
)
# The audio route found the file gone: a done task keeps its state.
mark_task_missing = (
    update(task).where(task.c.id == tid, task.c.state != TaskState.DONE).values(state=TaskState.MISSING, updated_at=now)
)

# --- operator actions -----------------------------------------------------------------------
REQUEUEABLE = (TaskState.FAILED, TaskState.DONE, TaskState.QUEUED)
requeueable_by_id = select(task.c.id).where(
    task.c.state.in_(REQUEUEABLE), task.c.id.in_(bindparam("ids", expanding=True))
)
failed_tasks = select(task.c.id).where(task.c.state == TaskState.FAILED)
# A file that was cut is probed again, and so cut anew (its parts' results are gone once stitched).
requeue_task = (
    update(task)
    .where(task.c.id == tid)
    .values(
        state=TaskState.QUEUED,
        attempts=0,
        last_error=None,
        done_at=None,
        split_ms=None,
        duration_ms=case((task.c.split_ms.is_not(None), None), else_=task.c.duration_ms),
        updated_at=now,
    )
)
