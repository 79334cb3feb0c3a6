"""A task or an attempt read inside the caller's transaction, by id or by lease token."""

from __future__ import annotations

from .errors import NotFound
from .sql import leases as sql_leases
from .sql.run import Tx
from .values import AttemptView, TaskView


def task_row(c: Tx, task_id: str, lock: bool = False) -> TaskView:
    row = c.execute(sql_leases.task_by_id_for_update if lock else sql_leases.task_by_id, {"tid": task_id}).first()
    if row is None:
        raise NotFound(f"unknown task id {task_id!r}")
    return TaskView.from_row(row)


def attempt_row(c: Tx, token: str) -> AttemptView:
    row = c.execute(sql_leases.attempt_by_token, {"tok": token}).first()
    if row is None:
        raise NotFound("unknown lease token")
    return AttemptView.from_row(row)
