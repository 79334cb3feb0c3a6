"""The lease state machine: claim, heartbeat, complete, fail, release, expire.

Each method is one write transaction. On SQLite writers are serialised (database.py); on
PostgreSQL the claim re-checks the row's state in its UPDATE and skips locked rows, so two servers
never grant the same task twice either. Expired leases are reclaimed lazily at the next claim (and
by the periodic sweep), so correctness needs no background job.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from stt_common.formats import hms

from .assign import Assigner, Outcome, Pick, Wait
from .booking import Booking
from .database import Database
from .errors import LeaseLost, NotFound
from .events import Event, EventLog
from .fleet import Fleet
from .policy import SchedulerKind, finish_at
from .rows import attempt_row, task_row
from .snapshot import Snapshots
from .sql import fleet as sql_fleet
from .sql import leases as sql_leases
from .sql import parts as sql_parts
from .sql import validation as sql_validation
from .sql.run import Tx
from .states import AttemptState, Protocol, TaskState
from .validation import Results, Validator
from .values import AttemptView, Completion, Grant, Made, TaskView

ResultIn = tuple[str, Results, Optional[Made]]  # a lease's token, its result's files, what made them


class Leases:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        clock: Callable[[], float],
        *,
        lease_seconds: int,
        max_attempts: int,
        fleet: Fleet,
        assigner: Assigner,
        validator: Validator,
        probed_only: bool = False,
        snapshot_seconds: float = 1.0,
    ):
        self.snapshots = Snapshots(
            db, clock, host_window=assigner.host_window, probed_only=probed_only, max_age=snapshot_seconds
        )
        self.db = db
        self.fleet = fleet
        self.assigner = assigner
        self.booking = Booking(fleet, validator, events, clock)
        self.events = events
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.probed_only = probed_only  # splitting is on: hand out only files whose length is known

    def claim(
        self,
        client: str,
        *,
        languages: Optional[Sequence[str]] = None,
        capabilities: Optional[dict[str, Any]] = None,
        protocol: Protocol = Protocol.V1,
        lease_seconds: Optional[int] = None,
        principal: Optional[str] = None,
    ) -> Union[Grant, Wait, None]:
        """Grant `client` the task the scheduler picks for it; Wait: work it may take is queued, but
        not for it now; None: nothing is queued for it (or it is cooling down). `principal`: whose
        credentials ask (the volunteer its results are credited to; None: the host itself)."""
        seconds = lease_seconds or self.lease_seconds
        validating = self.booking.validator.rule.on
        speed_aware = self.assigner.kind == SchedulerKind.SPEED
        # Read (at most once a second) before the write transaction, which it would otherwise hold up.
        view = self.snapshots.view(client, capabilities, languages) if speed_aware else None
        now = self.clock()
        grant: Optional[Grant] = None
        outcome: Outcome = None
        with self.db.writing(durable=False) as c:
            expired = self._expire_due(c, now)
            cooling = self.fleet.touch(c, client, now, capabilities)
            for _ in range(0 if cooling and cooling > now else 8):  # a lost race (several servers): pick again
                outcome = self.assigner.pick(
                    c, client, self.snapshots, view, capabilities, languages, self.probed_only, now, validating
                )
                if not isinstance(outcome, Pick):
                    break
                grant = self._take(c, outcome, (client, principal), protocol, now, now + seconds)
                if grant is not None:
                    break
                outcome = None
        self._log_expired(expired)
        if grant is None:
            return outcome if isinstance(outcome, Wait) else None
        if isinstance(outcome, Pick) and outcome.host:
            copyable = protocol != Protocol.LEGACY and not outcome.check  # the old client cannot be told to stop
            self.snapshots.granted(outcome.host, outcome.group, grant.task_id, grant.seconds, copyable)
        self.events.emit(
            Event.REPLICATED if grant.replica else Event.GRANTED,
            task=grant.task_id,
            client=client,
            protocol=protocol.value,
            attempt=grant.attempt,
            deadline=round(grant.deadline, 3),
            **({"spot": list(grant.spot)} if grant.spot else {}),
        )
        return grant

    def _take(
        self, c: Tx, pick: Pick, who: tuple[str, Optional[str]], protocol: Protocol, now: float, deadline: float
    ) -> Optional[Grant]:
        """The picked task (or a replica of it) as this client's lease (`who`: the host, and the
        principal it asked as); None: another server took it."""
        take = (
            sql_validation.take_check
            if pick.check
            else sql_fleet.take_replica
            if pick.replica
            else sql_leases.take_task
        )
        row = c.execute(take, {"tid": pick.task_id, "now": now}).first()
        if row is None:
            return None
        fields = dict(row._mapping)
        if not pick.check:  # a range is a check's alone
            fields.update(check_start_ms=None, check_end_ms=None)
        grant = Grant(pick.task_id, secrets.token_urlsafe(24), deadline, pick.replica, **fields)
        attempt = {
            "task_id": grant.task_id,
            "client": who[0],
            "principal": who[1],
            "protocol": protocol.value,
            "token": grant.token,
            "state": AttemptState.ACTIVE.value,
            "granted_at": now,
            "deadline": grant.deadline,
            "replica": grant.replica,
            "eta": finish_at(pick.host, grant.seconds, now) if pick.host else None,
            "checking": pick.check,
        }
        c.execute(sql_leases.insert_attempt, attempt)
        return grant

    def heartbeat(self, token: str, progress: Optional[float] = None, paused: Optional[str] = None) -> float:
        """Extend a live lease; returns the new deadline. LeaseLost means: stop working on it.
        `paused`: why its host has paused the work (its owner's rules): the lease is kept all the same."""
        now = self.clock()
        deadline = now + self.lease_seconds
        clamped = None if progress is None else max(0.0, min(100.0, progress))
        params = {"tok": token, "deadline": deadline, "now": now, "progress": clamped, "paused": paused}
        with self.db.writing() as c:
            task_id = c.execute(sql_leases.extend_lease, params).scalar()
            if task_id is None:
                state = c.execute(sql_leases.attempt_state_by_token, {"tok": token}).scalar()
                if state is None:
                    raise NotFound("unknown lease token")
                raise LeaseLost(f"lease is {state}: stop working on this task")
        self.events.emit(Event.EXTENDED, task=task_id, progress=progress, deadline=round(deadline, 3), paused=paused)
        return deadline

    def complete(self, token: str, results: Results, made: Optional[Made] = None) -> Completion:
        """Accept a result for the lease `token` (booking.py; validation may hold it for a check).

        `results` writes inside the transaction, so two results racing for one task never
        interleave their files, and the task is marked done only once its files are on disk.
        """
        done = self.complete_all([(token, results, made)])[0]
        if isinstance(done, Exception):
            raise done
        return done

    def complete_all(
        self, uploads: Sequence[ResultIn], before_commit: Callable[[], None] = lambda: None
    ) -> list[Union[Completion, Exception]]:
        """Several results in one transaction, each in its own savepoint (a refusal undoes only its
        own); `before_commit` runs just before the one commit, flushed once for all (group commit)."""
        done: list[Union[Completion, Exception]] = []
        booked: list[tuple[Completion, str]] = []
        with self.db.writing() as c:
            for token, results, made in uploads:
                try:
                    with c.savepoint():
                        attempt = attempt_row(c, token)
                        completion = self.booking.complete_attempt(c, attempt, results, made)
                except Exception as e:  # this upload's refusal (or its files' failure) alone
                    done.append(e)
                    continue
                done.append(completion)
                booked.append((completion, attempt.client))
            before_commit()
        for completion, client in booked:
            self.booking.log_completion(completion, client)
        return done

    def leased_tasks(self, tokens: Sequence[str]) -> dict[str, TaskView]:
        """The tasks behind these leases as they stand now (unknown tokens left out)."""
        with self.db.reading() as c:
            rows = {token: c.execute(sql_leases.attempt_by_token, {"tok": token}).first() for token in tokens}
            return {token: task_row(c, row.task_id) for token, row in rows.items() if row is not None}

    def fail(
        self, token: str, error: str, stderr_tail: Optional[str] = None, retryable: Optional[bool] = None
    ) -> TaskView:
        """Record a failed attempt; the task is retried until MAX_ATTEMPTS attempts have failed."""
        with self.db.writing() as c:
            attempt = attempt_row(c, token)
            view = self.fail_attempt(c, attempt, error, stderr_tail, retryable)
        self.log_failure(view, attempt.client, error, retryable)
        return view

    def release(self, token: str) -> TaskView:
        """The client gives the task back unfinished (volunteer stopped it): no attempt is used up."""
        now = self.clock()
        with self.db.writing() as c:
            task_id = c.execute(sql_leases.release_attempt, {"tok": token, "now": now}).scalar()
            if task_id is None:
                raise NotFound("no active lease with that token")
            if c.execute(sql_leases.task_has_active_attempt, {"tid": task_id}).first() is None:
                c.execute(sql_leases.give_task_back, {"tid": task_id, "now": now})
            view = task_row(c, task_id)
        self.events.emit(Event.RELEASED, task=task_id)
        return view

    def expire_due(self) -> int:
        """Reclaim expired leases now (the periodic sweep; claims also do this)."""
        with self.db.writing() as c:
            expired = self._expire_due(c, self.clock())
        self._log_expired(expired)
        return len(expired)

    def leased_task(self, token: str) -> TaskView:
        """The task behind a lease its holder may still use (to download its audio)."""
        with self.db.reading() as c:
            attempt = attempt_row(c, token)
            if attempt.state != AttemptState.ACTIVE:
                raise LeaseLost(f"lease is {attempt.state}")
            return task_row(c, attempt.task_id)

    # --- a step shared with the legacy adapter (inside the caller's transaction) ---------------

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

    # --- internals -------------------------------------------------------------------------

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

    def _expire_due(self, c: Tx, now: float) -> list[tuple[str, str, Optional[str]]]:
        out = []
        for task_id, client in c.execute(sql_leases.expire_due_attempts, {"now": now}).all():
            self._requeue_if_idle(c, task_id, f"lease expired (client {client} went silent)", now, expired=True)
            out.append((task_id, client, c.execute(sql_leases.task_state, {"tid": task_id}).scalar()))
        return out

    def _log_expired(self, expired: list[tuple[str, str, Optional[str]]]) -> None:
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
