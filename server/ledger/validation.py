"""Validation by replication, adaptive as BOINC's: a host's result is held until a second host's
agrees, until the host has earned trust; then only one result in n (n: its run of confirmed results)
is checked. Two results agree when the service layer says so (their texts within VALIDATE_WER); a
third host decides a disagreement, and the outvoted host's run starts again from 0, with a strike.

The ledger decides; the files are the service layer's (Results): the uploaded result is kept as
the task's, held for a check, compared with a held one, or a held one is promoted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Protocol

from .fleet import Fleet
from .rows import task_row
from .sql import leases as sql_leases
from .sql import validation as sql_validation
from .sql.run import Tx
from .values import AttemptView, TaskView, Verdict

MAX_RESULTS = 3  # a third result decides; three that all differ fail the task
# A held result waits this long for a check by a host of its model tier; then any eligible host may check it.
TIER_WAIT = 600.0


class ValidationMode(str, Enum):
    OFF = "off"  # every result is accepted as it is (jobs may still ask for checks)
    ADAPTIVE = "adaptive"  # untrusted hosts' results are checked; trusted hosts' one in n
    ALWAYS = "always"  # every result is checked

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ValidationRule:
    mode: ValidationMode = ValidationMode.OFF
    trust_after: int = 10  # confirmed results in a row before a host is trusted
    chance: Callable[[], float] = random.random

    @property
    def on(self) -> bool:
        return self.mode != ValidationMode.OFF

    def trusted(self, streak: int) -> bool:
        return streak >= self.trust_after

    def wants_check(self, streak_of: Callable[[], int], asked: bool) -> bool:
        """`streak_of` is read only when the answer depends on it (adaptive, not asked)."""
        if asked or self.mode == ValidationMode.ALWAYS:
            return True
        if self.mode == ValidationMode.OFF:
            return False
        streak = streak_of()
        return not self.trusted(streak) or self.chance() < 1 / streak


class Results(Protocol):
    """The uploaded result's files, written where the ledger's verdict says (inside its transaction)."""

    def keep(self, task: TaskView) -> None: ...  # the upload becomes the task's result

    def hold(self, task: TaskView, attempt_id: int) -> None: ...  # the upload waits for a check

    def agrees(self, task: TaskView, attempt_id: int) -> bool: ...  # the upload and a held result

    def promote(self, task: TaskView, attempt_id: int) -> None: ...  # a held result becomes the task's

    def reopen(self, task: TaskView, attempt_id: int) -> bool: ...  # a kept result is held again (False: gone)


class Validator:
    def __init__(self, rule: ValidationRule, fleet: Fleet):
        self.rule = rule
        self.fleet = fleet

    def settle(self, c: Tx, task: TaskView, attempt: AttemptView, results: Results, tier: int) -> Verdict:
        """What becomes of an upload for a task that is not done yet (inside the completion's lock)."""
        held = [(r.id, r.client) for r in c.execute(sql_validation.held_results, {"tid": task.id}).all()]
        now = self.fleet.clock()
        if not held:
            streak = partial(_streak, c, attempt.client)
            if not self.rule.wants_check(streak, task.validate_all):
                results.keep(task)
                return Verdict()
            return self._hold(c, task, attempt, results, tier, now)
        for held_id, held_client in held:
            if held_client != attempt.client and results.agrees(task, held_id):
                results.promote(task, held_id)
                c.execute(sql_leases.mark_attempt_completed, {"aid": held_id, "now": now})
                losers = [(i, who) for i, who in held if i != held_id]
                cooled, rechecked = [], []
                for i, who in losers:
                    c.execute(sql_validation.outvote, {"aid": i})
                    c.execute(sql_validation.outvoted, {"cname": who})
                    if until := self.fleet.strike(c, who, now):
                        cooled.append((who, until))
                    rechecked += self._recheck(c, who, results, now)
                for who in (held_client, attempt.client):
                    c.execute(sql_validation.confirmed, {"cname": who})
                c.execute(sql_leases.credit_client_done, {"cname": held_client, "now": now})
                confirmed = (held_client, attempt.client)
                outvoted = tuple(w for _, w in losers)
                return Verdict(kept=held_id, confirmed=confirmed, outvoted=outvoted, cooled=cooled, rechecked=rechecked)
        if len(held) + 1 >= MAX_RESULTS:
            error = f"{MAX_RESULTS} hosts sent {MAX_RESULTS} different transcripts: none can be trusted"
            c.execute(sql_validation.drop_held, {"tid": task.id})
            c.execute(sql_validation.disagreed, {"tid": task.id, "error": error, "now": now})
            return Verdict(disagreed=True)
        return self._hold(c, task, attempt, results, tier, now)

    @staticmethod
    def _recheck(c: Tx, host: str, results: Results, now: float) -> list[str]:
        """An outvoted host's results that went out unchecked (it was trusted) are held again for a
        check, a job's and a stitched file's parts too: the file's result stays until a check outvotes
        it (a part's file is stitched again once the part is done)."""
        reopened = []
        for aid, tid, file_id in c.execute(sql_validation.unchecked_results_of, {"cname": host}).all():
            if c.execute(sql_validation.others_completed, {"tid": tid, "aid": aid}).first() is not None:
                continue  # another host's result confirmed it
            if results.reopen(task_row(c, tid, lock=True), aid):
                c.execute(sql_validation.hold_attempt, {"aid": aid, "now": now})
                c.execute(sql_validation.reopen, {"tid": tid, "now": now})
                if file_id is not None:
                    c.execute(sql_validation.unstitch, {"tid": file_id, "now": now})
                reopened.append(tid)
        return reopened

    @staticmethod
    def _hold(c: Tx, task: TaskView, attempt: AttemptView, results: Results, tier: int, now: float) -> Verdict:
        results.hold(task, attempt.id)
        c.execute(sql_validation.hold_attempt, {"aid": attempt.id, "now": now})
        c.execute(sql_validation.to_checking, {"tid": task.id, "tier": tier, "now": now})
        return Verdict(held=True)


def _streak(c: Tx, client: str) -> int:
    return int(c.execute(sql_validation.streak_of, {"cname": client}).scalar() or 0)
