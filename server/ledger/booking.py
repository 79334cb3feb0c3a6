"""Booking a result to the attempt whose holder sent it (both protocols, inside the caller's
transaction): the state checks under the task's row lock, validation's verdict, then the task done,
its hosts credited, the uploader's speed learned and a split file's readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from .errors import LeaseLost
from .events import Event, EventLog
from .fleet import Fleet
from .rows import task_row
from .sql import leases as sql_leases
from .sql import parts as sql_parts
from .sql import validation as sql_validation
from .sql.run import Tx
from .states import AttemptState, TaskState
from .tiers import model_tier
from .validation import Results, Validator
from .values import AttemptView, Completion, Made, TaskView

Range = tuple[float, float]

# An attempt whose result is held, or was judged, has been answered: a repeat changes nothing.
ANSWERED = (AttemptState.PENDING, AttemptState.INVALID, AttemptState.COMPLETED)


class Booking:
    def __init__(self, fleet: Fleet, validator: Validator, events: EventLog, clock: Callable[[], float]):
        self.fleet = fleet
        self.validator = validator
        self.events = events
        self.clock = clock

    def complete_attempt(self, c: Tx, attempt: AttemptView, results: Results, made: Optional[Made]) -> Completion:
        now = self.clock()
        task = task_row(c, attempt.task_id, lock=True)
        if task.state == TaskState.DONE or attempt.state in ANSWERED:
            return Completion(task, True, False, task.attempts)
        if task.state == TaskState.CANCELLED:
            raise LeaseLost(f"task {task.id} was cancelled")
        if attempt.state in (AttemptState.RELEASED, AttemptState.SUPERSEDED):
            raise LeaseLost(f"lease is {attempt.state}: the file changed or the task was handed back; result refused")
        late = attempt.state != AttemptState.ACTIVE or attempt.deadline < now
        spot = task.spot if attempt.checking and made is not None and task.is_spot(made.spot) else None
        if spot:
            c.execute(sql_validation.spot_checked, {"aid": attempt.id, "ms": round(1000 * (spot[1] - spot[0]))})
        # A result held for a check was transcribed all the same; a spot check, its range.
        self._learn(c, task, attempt, made, now, spot)
        # Files only now: after the state checks, under the task's lock.
        tier = model_tier(made.model if made else "")
        verdict = self.validator.settle(c, task, attempt, results, tier, spot is not None)
        if verdict.held or verdict.disagreed or verdict.redo:
            return Completion(task_row(c, task.id), False, late, task.attempts, verdict=verdict)
        # What was transcribed: the task's probed length, else what the client says (an unprobed file).
        audio_seconds = task.seconds or (made.audio_seconds if made else None)
        done = TaskView.from_row(
            c.execute(sql_leases.mark_task_done, {"tid": task.id, "now": now, "audio_seconds": audio_seconds}).one()
        )
        c.execute(sql_leases.complete_and_supersede, {"aid": attempt.id, "tid": task.id, "now": now})
        cooled = self.fleet.succeeded(c, task.id, attempt.client, now) + verdict.cooled
        ready = None
        if task.parent_id and not c.execute(sql_parts.count_unfinished_parts, {"fid": task.parent_id}).scalar():
            # Every part is done (a late result may even complete a file that had failed): stitch it.
            c.execute(sql_parts.reopen_file, {"tid": task.parent_id, "now": now})
            ready = task.parent_id
        return Completion(done, False, late, task.attempts, ready, cooled, verdict)

    def _learn(
        self, c: Tx, task: TaskView, attempt: AttemptView, made: Optional[Made], now: float, spot: Optional[Range]
    ) -> None:
        seconds = spot[1] - spot[0] if spot else task.seconds
        if seconds <= 0:  # measured here: the client's own figures are not believed
            return
        model, backend = (made.model, made.backend) if made else ("", "")
        self.fleet.learn(
            c,
            attempt.client,
            model=model,
            backend=backend,
            audio_seconds=seconds,
            granted_at=attempt.granted_at,
            now=now,
        )

    def log_completion(self, c: Completion, client: str) -> None:
        v = c.verdict
        if v.held:
            self.events.emit(Event.RESULT_PENDING, task=c.task.id, client=client, job=c.task.job_id)
            return
        for host in v.outvoted:
            self.events.emit(Event.RESULT_INVALID, task=c.task.id, client=host, job=c.task.job_id)
        for task_id in v.rechecked:
            self.events.emit(Event.RESULT_PENDING, task=task_id, client=", ".join(v.outvoted), recheck=True)
        if v.disagreed:
            self.events.emit(
                Event.RESULT_INVALID, task=c.task.id, client=client, job=c.task.job_id, error=c.task.last_error
            )
            return
        if v.confirmed:
            self.events.emit(Event.RESULT_VALID, task=c.task.id, clients=list(v.confirmed), job=c.task.job_id)
        if v.redo:  # two spot checks outvoted the held result: queued again, not done
            self.events.emit(Event.REQUEUED, task=c.task.id, reason="outvoted by two spot checks", job=c.task.job_id)
            self.fleet.log_cooled(v.cooled)
            return
        self.events.emit(
            Event.DUPLICATE if c.duplicate else Event.COMPLETED,
            task=c.task.id,
            client=client,
            late=c.late,
            attempt=c.attempt,
            audio_seconds=None if c.duplicate else round(c.task.seconds, 3),
            job=c.task.job_id,
        )
        self.fleet.log_cooled(c.cooled)
