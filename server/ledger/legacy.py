"""The legacy protocol's differences, kept out of the lease state machine.

Legacy clients never heartbeat, so their lease must cover a whole transcription; and they name
only the task when reporting, so a result credits the task's newest legacy attempt (live or not)
and an error its newest live legacy one: never a v1 holder's or a replica's. The old client cannot
be told to stop, so a task it holds is never replicated (snapshot.py) and it never gets a replica
(assign.py).
"""

from __future__ import annotations

from typing import Optional

from .errors import LeaseLost
from .leases import Leases
from .rows import task_row
from .sql import leases as sql_leases
from .states import Protocol, TaskState
from .validation import Results
from .values import AttemptView, Completion, Grant, TaskView


class LegacyLeases:
    def __init__(self, leases: Leases, lease_seconds: int):
        self.leases = leases
        self.lease_seconds = lease_seconds

    def claim(self, client: str, principal: Optional[str] = None) -> Optional[Grant]:
        """The protocol has no way to say "ask again later": a policy wait is a plain "nothing"."""
        grant = self.leases.claim(
            client, protocol=Protocol.LEGACY, lease_seconds=self.lease_seconds, principal=principal
        )
        return grant if isinstance(grant, Grant) else None

    def complete(self, task_id: str, results: Results) -> Completion:
        with self.leases.db.writing() as c:
            task = task_row(c, task_id)
            row = c.execute(sql_leases.newest_legacy_attempt_of_task, {"tid": task_id}).first()
            if row is None:
                if task.state == TaskState.DONE:
                    return Completion(task, True, False, 0)
                raise LeaseLost(f"task {task_id} was never handed out to a legacy client")
            attempt = AttemptView.from_row(row)
            completion = self.leases.booking.complete_attempt(c, attempt, results, None)
        self.leases.booking.log_completion(completion, attempt.client)
        self.leases.snapshots.let_go(attempt.client, task_id)
        return completion

    def fail(self, task_id: str, error: str = "reported by a legacy client") -> TaskView:
        with self.leases.db.writing() as c:
            task = task_row(c, task_id)
            row = c.execute(sql_leases.newest_active_legacy_attempt_of_task, {"tid": task_id}).first()
            if row is None:  # nothing in flight: a stale or repeated report changes nothing
                return task
            attempt = AttemptView.from_row(row)
            view = self.leases.endings.fail_attempt(c, attempt, error, None, None)
        self.leases.endings.log_failure(view, attempt.client, error, None)
        self.leases.snapshots.let_go(attempt.client, task_id)
        return view
