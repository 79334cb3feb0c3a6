"""The lease state machine: claim, heartbeat, complete, fail, release, expire.

Each method is one write transaction. On SQLite writers are serialised (database.py); on
PostgreSQL the claim re-checks the row's state in its UPDATE and skips locked rows, so two servers
never grant the same task twice either. Expired leases are reclaimed lazily at the next claim (and
by the periodic sweep), so correctness needs no background job.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from .assign import Assigner, Outcome, Pick, Wait
from .booking import Booking
from .database import Database
from .endings import Endings, Expired
from .errors import LeaseLost, NotFound
from .events import Event, EventLog
from .fleet import Fleet
from .policy import SchedulerKind, finish_at
from .rows import attempt_row, task_row
from .snapshot import Snapshots
from .sql import fleet as sql_fleet
from .sql import leases as sql_leases
from .sql import validation as sql_validation
from .sql.run import Tx
from .states import AttemptState, Protocol
from .validation import Results, Validator
from .values import Completion, Grant, Made, TaskView

ResultIn = tuple[str, Results, Optional[Made]]  # a lease's token, its result's files, what made them
Claimed = Union[Grant, Wait, None]


@dataclass(frozen=True)
class Ask:
    """A host's claim (Leases.claim's arguments)."""

    client: str
    languages: Optional[Sequence[str]] = None
    capabilities: Optional[dict[str, Any]] = None
    protocol: Protocol = Protocol.V1
    lease_seconds: Optional[int] = None
    principal: Optional[str] = None


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
        self.endings = Endings(events, clock, max_attempts)
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
    ) -> Claimed:
        """Grant `client` the task the scheduler picks for it; Wait: work it may take is queued, but
        not for it now; None: nothing is queued for it (or it is cooling down). `principal`: whose
        credentials ask (the volunteer its results are credited to; None: the host itself)."""
        ask = Ask(client, languages, capabilities, protocol, lease_seconds, principal)
        claimed = self.claim_all([ask])[0]
        if isinstance(claimed, Exception):
            raise claimed
        return claimed

    def claim_all(self, asks: Sequence[Ask]) -> list[Union[Claimed, Exception]]:
        """Several claims in one transaction (those that queued meanwhile: group_commit.py in
        server/), each in its own savepoint and seeing the grants before it. Its commit is not
        flushed: a power cut may forget grants, whose tasks are then simply handed out again."""
        out: list[Union[Claimed, Exception]] = []
        granted: list[tuple[Grant, Ask]] = []
        self.snapshots.refresh()  # read (at most once a second) before the transaction, not in it
        now = self.clock()
        with self.db.writing(durable=False) as c:
            expired = self.endings.expire_due(c, now)
            self._let_go_expired(expired)  # before the claims: a silent host asking again holds nothing
            for ask in asks:
                try:
                    with c.savepoint():
                        claimed = self._claim(c, ask, now)
                except Exception as e:  # this claim's failure alone
                    out.append(e)
                    continue
                out.append(claimed)
                if isinstance(claimed, Grant):
                    granted.append((claimed, ask))
        self.endings.log_expired(expired)
        for grant, ask in granted:
            self.events.emit(
                Event.REPLICATED if grant.replica else Event.GRANTED,
                task=grant.task_id,
                client=ask.client,
                protocol=ask.protocol.value,
                attempt=grant.attempt,
                deadline=round(grant.deadline, 3),
                **({"spot": list(grant.spot)} if grant.spot else {}),
            )
        return out

    def _claim(self, c: Tx, ask: Ask, now: float) -> Claimed:
        validating = self.booking.validator.rule.on
        caps, languages = ask.capabilities, ask.languages
        view = self.snapshots.view(ask.client, caps, languages) if self.assigner.kind == SchedulerKind.SPEED else None
        outcome: Outcome = None
        cooling = self.fleet.touch(c, ask.client, now, caps)
        for _ in range(0 if cooling and cooling > now else 8):  # a lost race (several servers): pick again
            outcome = self.assigner.pick(
                c, ask.client, self.snapshots, view, caps, languages, self.probed_only, now, validating
            )
            if not isinstance(outcome, Pick):
                return outcome if isinstance(outcome, Wait) else None
            deadline = now + (ask.lease_seconds or self.lease_seconds)
            grant = self._take(c, outcome, (ask.client, ask.principal), ask.protocol, now, deadline)
            if grant is None:
                continue
            if outcome.host:  # a replica could overtake it later, but the old client cannot be told to stop
                copyable = ask.protocol != Protocol.LEGACY and not outcome.check
                self.snapshots.granted(outcome.host, outcome.group, grant.task_id, grant.seconds, copyable)
            return grant
        return None

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
            self.snapshots.let_go(client, completion.task.id)
        return done

    def leased_tasks(self, tokens: Sequence[str]) -> dict[str, TaskView]:
        """The tasks behind these leases as they stand now (unknown tokens left out)."""
        with self.db.reading() as c:
            rows = {token: c.execute(sql_leases.task_by_token, {"tok": token}).first() for token in tokens}
            return {token: TaskView.from_row(row) for token, row in rows.items() if row is not None}

    def fail(
        self, token: str, error: str, stderr_tail: Optional[str] = None, retryable: Optional[bool] = None
    ) -> TaskView:
        """Record a failed attempt; the task is retried until MAX_ATTEMPTS attempts have failed."""
        with self.db.writing() as c:
            attempt = attempt_row(c, token)
            view = self.endings.fail_attempt(c, attempt, error, stderr_tail, retryable)
        self.endings.log_failure(view, attempt.client, error, retryable)
        self.snapshots.let_go(attempt.client, attempt.task_id)
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
            expired = self.endings.expire_due(c, self.clock())
        self.endings.log_expired(expired)
        self._let_go_expired(expired)
        return len(expired)

    def _let_go_expired(self, expired: list[Expired]) -> None:
        for task_id, silent, _ in expired:
            self.snapshots.let_go(silent, task_id)

    def leased_task(self, token: str) -> TaskView:
        """The task behind a lease its holder may still use (to download its audio)."""
        with self.db.reading() as c:
            attempt = attempt_row(c, token)
            if attempt.state != AttemptState.ACTIVE:
                raise LeaseLost(f"lease is {attempt.state}")
            return task_row(c, attempt.task_id)
