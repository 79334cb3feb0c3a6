"""How an attempt that brings no result ends (inside the caller's transaction): failed or expired,
its task queued again, or failed for good once MAX_ATTEMPTS attempts have failed (a part's failure
fails its file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from stt_common.formats import hms

from .events import Event, EventLog
from .rows import task_row
from .sql import leases as sql_leases
from .sql import parts as sql_parts
from .sql.run import Tx
from .states import AttemptState, TaskState
from .values import AttemptView, TaskView

Expired = tuple[str, str, Optional[str]]  # task, the silent client, the task's state after


class Endings:
    def __init__(self, events: EventLog, clock: Callable[[], float], max_attempts: int):
        self.events = events
        self.clock = clock
        self.max_attempts = max_attempts

    def fail_attempt(
        self, c: Tx, attempt: AttemptView, error: str, stderr_tail: Optional[str], retryable: Optional[bool]
    ) -> TaskView:
        now = self.clock()
        was_active = attempt.state == AttemptState.ACTIVE
        c.execute(
            sql_leases.record_attempt_failure,
            {
                "aid": attempt.id,
                "state": AttemptState.FAILED.value if was_active else attempt.state,
                "error": error,
                "stderr_tail": stderr_tail,
                "retryable": retryable,
                "now": now,
            },
        )
        full_error = error if not stderr_tail else f"{error}\n{stderr_tail}"
        if was_active:
            self._requeue_if_idle(c, attempt.task_id, full_error, now)
        else:  # too late to count (the task may be someone else's now), but still worth showing
            c.execute(sql_leases.note_error_on_idle_task, {"tid": attempt.task_id, "error": full_error})
        c.execute(sql_leases.debit_client_failed, {"cname": attempt.client, "now": now})
        return task_row(c, attempt.task_id)

    def expire_due(self, c: Tx, now: float) -> list[Expired]:
        out = []
        for task_id, client in c.execute(sql_leases.expire_due_attempts, {"now": now}).all():
            self._requeue_if_idle(c, task_id, f"lease expired (client {client} went silent)", now, expired=True)
            out.append((task_id, client, c.execute(sql_leases.task_state, {"tid": task_id}).scalar()))
        return out

    def log_expired(self, expired: list[Expired]) -> None:
        for task_id, client, state in expired:
            self.events.emit(Event.EXPIRED, task=task_id, client=client, task_state=state)

    def log_failure(self, view: TaskView, client: str, error: str, retryable: Optional[bool]) -> None:
        self.events.emit(
            Event.FAILED,
            task=view.id,
            client=client,
            error=error[:200],
            retryable=retryable,
            task_state=view.state.value,
            attempts=view.attempts,
            job=view.job_id,
        )

    def _requeue_if_idle(self, c: Tx, task_id: str, error: str, now: float, expired: bool = False) -> None:
        if c.execute(sql_leases.task_has_active_attempt, {"tid": task_id}).first() is None:
            c.execute(
                sql_leases.requeue_after_expiry if expired else sql_leases.requeue_after_failure,
                {"tid": task_id, "max_attempts": self.max_attempts, "error": error, "now": now},
            )
            part = c.execute(sql_parts.part_outcome, {"tid": task_id}).one()
            if part.parent_id and part.state == TaskState.FAILED:  # a part failed for good: so did its file
                span = f"{hms(part.start_ms / 1000)}-{hms(part.end_ms / 1000)}"
                message = f"part {span} failed: {part.last_error}"
                c.execute(sql_parts.fail_file, {"tid": part.parent_id, "error": message, "now": now})
