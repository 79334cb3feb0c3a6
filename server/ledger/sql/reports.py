"""The statements of the reports: task pages, counts and totals."""

from __future__ import annotations

from sqlalchemy import bindparam, func, or_, select

from ..states import AttemptState, TaskState
from ..tables import attempt, task
from .params import TASK_VIEW

# --- reports --------------------------------------------------------------------------------
all_tasks_page = (
    select(*TASK_VIEW).order_by(task.c.path, task.c.start_ms).offset(bindparam("offset")).limit(bindparam("limit"))
)
tasks_in_state_page = all_tasks_page.where(task.c.state == bindparam("state"))
count_by_state = select(task.c.state, func.count()).group_by(task.c.state)
done_totals = select(func.coalesce(func.sum(task.c.audio_seconds), 0.0), func.coalesce(func.sum(task.c.size), 0)).where(
    task.c.state == TaskState.DONE
)
bytes_left = select(func.coalesce(func.sum(task.c.size), 0)).where(
    task.c.state.in_([TaskState.QUEUED, TaskState.LEASED, TaskState.CHECKING])
)
active_clients = (
    select(attempt.c.client)
    .where(or_(attempt.c.granted_at > bindparam("since"), attempt.c.heartbeat_at > bindparam("since")))
    .distinct()
    .order_by(attempt.c.client)
)
count_active_attempts = select(func.count()).select_from(attempt).where(attempt.c.state == AttemptState.ACTIVE)
