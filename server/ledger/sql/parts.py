"""The statements about long files and their parts (conventions: params.py)."""

from __future__ import annotations

from sqlalchemy import String, bindparam, case, delete, func, select, update
from sqlalchemy.sql.elements import BindParameter

from ..states import AttemptState, TaskState
from ..tables import attempt, task
from ..values import PartView
from .params import TASK_VIEW, now, tid

fid: BindParameter[str] = bindparam("fid", type_=String)
part = task.alias("part")
part_started = (part.c.attempts > 0) | (part.c.state != TaskState.QUEUED)
files_to_split = (
    select(*TASK_VIEW)
    .where(
        task.c.state == TaskState.QUEUED,
        task.c.parent_id.is_(None),
        task.c.attempts == 0,
        task.c.duration_ms > bindparam("split_ms"),
    )
    .order_by(task.c.path)
    .limit(bindparam("limit"))
)
# Only while nobody has started it, and unless the file changed since it was probed.
take_file_for_split = (
    update(task)
    .where(
        task.c.id == tid,
        task.c.state == TaskState.QUEUED,
        task.c.attempts == 0,
        task.c.size == bindparam("probed_size"),
    )
    .values(state=TaskState.SPLIT, split_ms=bindparam("split_ms"), duration_ms=bindparam("duration_ms"), updated_at=now)
)
# Split files cut for another SPLIT_SECONDS whose parts nobody has started.
stale_splits = select(task.c.id).where(
    task.c.state == TaskState.SPLIT,
    task.c.split_ms != bindparam("split_ms"),
    ~select(part.c.id).where(part.c.parent_id == task.c.id, part_started).exists(),
)
drop_part_attempts = delete(attempt).where(attempt.c.task_id.in_(select(task.c.id).where(task.c.parent_id == fid)))
drop_parts = delete(task).where(task.c.parent_id == fid)
unsplit_file = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.SPLIT)
    .values(state=TaskState.QUEUED, split_ms=None, duration_ms=None, updated_at=now)  # probed and cut anew
)
accepted_client = (
    select(attempt.c.client)
    .where(attempt.c.task_id == task.c.id, attempt.c.state == AttemptState.COMPLETED)
    .order_by(attempt.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
parts_of_file = (
    select(*(accepted_client.label(f) if f == "client" else task.c[f] for f in PartView.columns()))
    .where(task.c.parent_id == fid)
    .order_by(task.c.start_ms, task.c.stream, task.c.channel)
)
files_ready_to_stitch = select(task.c.id).where(
    task.c.state == TaskState.SPLIT,
    ~select(part.c.id).where(part.c.parent_id == task.c.id, part.c.state != TaskState.DONE).exists(),
)
count_unfinished_parts = (
    select(func.count()).select_from(task).where(task.c.parent_id == fid, task.c.state != TaskState.DONE)
)
mark_file_stitched = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.SPLIT)
    .values(
        state=TaskState.DONE, done_at=now, updated_at=now, last_error=None, audio_seconds=bindparam("audio_seconds")
    )
)
part_outcome = select(task.c.state, task.c.parent_id, task.c.last_error, task.c.start_ms, task.c.end_ms).where(
    task.c.id == tid
)
fail_file = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.SPLIT)
    .values(state=TaskState.FAILED, last_error=bindparam("error"), updated_at=now)
)
# Back to work once none of its parts is failed any more.
reopen_file = (
    update(task)
    .where(
        task.c.id == tid,
        task.c.state == TaskState.FAILED,
        task.c.split_ms.is_not(None),
        ~select(part.c.id).where(part.c.parent_id == task.c.id, part.c.state == TaskState.FAILED).exists(),
    )
    .values(state=TaskState.SPLIT, last_error=None, updated_at=now)
)
requeue_failed_parts = (
    update(task)
    .where(task.c.parent_id == fid, task.c.state == TaskState.FAILED)
    .values(state=TaskState.QUEUED, attempts=0, last_error=None, updated_at=now)
)
file_progress = (
    select(
        task.c.parent_id,
        func.count(),
        func.coalesce(func.sum(case((task.c.state == TaskState.DONE, 1), else_=0)), 0),
    )
    .where(task.c.parent_id.in_(bindparam("ids", expanding=True)))
    .group_by(task.c.parent_id)
)
stale_split_by_id = stale_splits.where(task.c.id == tid)
requeue_view = select(task.c.state, task.c.split_ms, task.c.parent_id).where(task.c.id == tid)
# A file whose parts no longer fit it (replaced, or gone while unfinished) is whole again.
restart_split_file = (
    update(task)
    .where(task.c.id == tid, task.c.split_ms.is_not(None), task.c.state.in_([TaskState.SPLIT, TaskState.FAILED]))
    .values(state=TaskState.QUEUED, attempts=0, split_ms=None, duration_ms=None, last_error=None, updated_at=now)
)
# Gone while unfinished: if it comes back it is probed and cut anew (mark it missing after this).
forget_split = (
    update(task)
    .where(task.c.id == tid, task.c.state.in_([TaskState.SPLIT, TaskState.FAILED]))
    .values(split_ms=None, duration_ms=None)
)
# The speakers of files cut per speaker, in stream and channel order.
file_speakers = (
    select(task.c.parent_id, task.c.speaker)
    .where(task.c.parent_id.in_(bindparam("ids", expanding=True)), task.c.speaker.is_not(None))
    .group_by(task.c.parent_id, task.c.speaker)
    .order_by(task.c.parent_id, func.min(task.c.stream), func.min(task.c.channel))
)
