"""Reading the ledger for people and dashboards: one task, pages of tasks, totals. Never locks writers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from . import sql, sql_fleet
from .database import Database
from .leases import task_row
from .states import TaskState
from .values import Stats, TaskView


class Reports:
    def __init__(self, db: Database, clock: Callable[[], float]):
        self.db = db
        self.clock = clock

    def task(self, task_id: str) -> TaskView:
        with self.db.reading() as c:
            return task_row(c, task_id)

    def tasks(self, state: Optional[TaskState] = None, limit: int = 1000, offset: int = 0) -> list[TaskView]:
        page = {"limit": limit, "offset": offset}
        with self.db.reading() as c:
            rows = (
                c.execute(sql.all_tasks_page, page)
                if state is None
                else c.execute(sql.tasks_in_state_page, {**page, "state": TaskState(state).value})
            )
            return [TaskView.from_row(r) for r in rows]

    def stats(self, active_window: float = 900.0) -> Stats:
        since = self.clock() - active_window
        with self.db.reading() as c:
            counts = dict.fromkeys(TaskState, 0)
            counts.update({TaskState(state): n for state, n in c.execute(sql.count_by_state)})
            seconds_done, bytes_done = c.execute(sql.done_totals).one()
            bytes_left = c.execute(sql.bytes_left).scalar_one()
            clients = list(c.execute(sql.active_clients, {"since": since}).scalars())
            active = c.execute(sql.count_active_attempts).scalar_one()
            replicas, won = c.execute(sql_fleet.replica_totals).one()
        return Stats(
            counts, float(seconds_done), int(bytes_done), int(bytes_left), clients, int(active), replicas, int(won)
        )
