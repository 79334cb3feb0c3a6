"""The SQL of the operator's overview (dashboard, metrics): totals by state, the last hour's output."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnClause, Float, bindparam, func, literal_column, select

from ..states import AttemptState, TaskState
from ..tables import LENGTH_MS, attempt, task

_length_ms: ColumnClause[Any] = literal_column(LENGTH_MS)

# Files as the operator put them in AUDIO_DIR (a long file once, not its parts).
files_by_state = select(task.c.state, func.count()).where(task.c.parent_id.is_(None)).group_by(task.c.state)

# Audio of the units of work (parts, and files that were not cut): a split file's own row is left out.
audio_by_state = (
    select(task.c.state, func.coalesce(func.sum(_length_ms), 0))
    .where(task.c.state != TaskState.SPLIT, task.c.split_ms.is_(None))
    .group_by(task.c.state)
)

# Is anything left to do? (one row at most, through the state-led indexes)
work_left = (
    select(task.c.id)
    .where(task.c.state.in_([TaskState.QUEUED, TaskState.LEASED, TaskState.SPLIT, TaskState.CHECKING]))
    .limit(1)
)

# Units of work finished since `since`, and their audio (seconds).
done_since = select(func.count(), func.coalesce(func.sum(_length_ms), 0)).where(
    task.c.state == TaskState.DONE,
    task.c.split_ms.is_(None),
    task.c.done_at >= bindparam("since", type_=Float),
)

# Long files not yet stitched (or failed), for their parts' progress.
split_files = (
    select(task.c.id, task.c.path, task.c.state, task.c.duration_ms)
    .where(task.c.split_ms.is_not(None), task.c.state.in_([TaskState.SPLIT, TaskState.FAILED]))
    .order_by(task.c.path)
    .limit(bindparam("limit"))
)

# What each host is working on now.
active_work = (
    select(
        attempt.c.client,
        task.c.path,
        task.c.start_ms,
        task.c.end_ms,
        task.c.speaker,
        attempt.c.progress,
        attempt.c.paused,
    )
    .join(task, task.c.id == attempt.c.task_id)
    .where(attempt.c.state == AttemptState.ACTIVE)
    .order_by(attempt.c.client, attempt.c.granted_at)
)
