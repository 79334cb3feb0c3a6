"""The SQL of the volunteers' credit (volunteers.py): delivered results by volunteer, host and day."""

from __future__ import annotations

from sqlalchemy import Integer, cast, func, select

from ..states import AttemptState
from ..tables import attempt, client, task
from .fleet import length

# Results a host delivered: accepted (completed), held for a check (pending), or outvoted (invalid).
DELIVERED = (AttemptState.COMPLETED, AttemptState.PENDING, AttemptState.INVALID)
volunteer = func.coalesce(attempt.c.principal, attempt.c.client).label("volunteer")
# The day (UNIX days): round(x - 0.5) is floor(x) in both dialects (SQLite may lack floor()).
day = cast(func.round(attempt.c.finished_at / 86400.0 - 0.5), Integer).label("day")
results_by_day = (
    select(
        volunteer,
        attempt.c.client,
        attempt.c.state,
        day,
        func.count().label("results"),
        func.coalesce(func.sum(length), 0.0).label("seconds"),
    )
    .join(task, task.c.id == attempt.c.task_id)
    .where(attempt.c.state.in_(DELIVERED), attempt.c.finished_at.is_not(None))
    .group_by(volunteer, attempt.c.client, attempt.c.state, day)
)
hosts = select(client.c.name, client.c.capabilities, client.c.last_seen)
