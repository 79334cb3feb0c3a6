"""Validation by replication, adaptive as BOINC's: a host's result is held until a second host's
agrees, until the host has earned trust; then only one result in n (n: its run of confirmed results)
is checked. Two results agree when the service layer says so (their texts within VALIDATE_WER); a
third host decides a disagreement, and the outvoted host's run starts again from 0, with a strike.

A check is a spot check: it transcribes one range of the task's audio (CHECK_SECONDS, at a random
place, the same for every checker of that result), compared with the held result's words there; a
task not much longer than that is checked whole. Two checks that agree with each other and not with
the held result send the task back to the queue, to be transcribed whole again (a range is no
transcript).

The ledger decides; the files are the service layer's (Results): the uploaded result is kept as
the task's, held for a check, compared with a held one, or a held one is promoted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any, Optional, Protocol

from .fleet import Fleet
from .rows import task_row
from .sql import leases as sql_leases
from .sql import validation as sql_validation
from .sql.run import Tx
from .values import AttemptView, TaskView, Verdict

Window = tuple[Optional[int], Optional[int]]  # a spot check's range of the task's audio, ms (None: all)

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
    check_seconds: float = 60.0  # a check transcribes this much of the task (0: all of it)

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

    def spot(self, seconds: float) -> Window:
        """The range of a task's audio its checks transcribe, in ms; the whole task (None, None) when
        it is not much longer than a check (or its length is unknown)."""
        if not self.check_seconds or seconds < 1.5 * self.check_seconds:
            return None, None
        start = self.chance() * (seconds - self.check_seconds)
        return round(start * 1000), round((start + self.check_seconds) * 1000)


class Results(Protocol):
    """The uploaded result's files, written where the ledger's verdict says (inside its transaction)."""

    def keep(self, task: TaskView) -> None: ...  # the upload becomes the task's result

    def hold(self, task: TaskView, attempt_id: int) -> None: ...  # the upload waits for a check

    def agrees(self, task: TaskView, attempt_id: int) -> bool: ...  # the upload and a held result (in its range)

    def promote(self, task: TaskView, attempt_id: int) -> None: ...  # a held result becomes the task's

    def reopen(self, task: TaskView, attempt_id: int) -> bool: ...  # a kept result is held again (False: gone)


class Validator:
    def __init__(self, rule: ValidationRule, fleet: Fleet):
        self.rule = rule
        self.fleet = fleet

    def settle(self, c: Tx, task: TaskView, attempt: AttemptView, results: Results, tier: int, spot: bool) -> Verdict:
        """What becomes of an upload for a task that is not done yet (inside the completion's lock).
        `spot`: the upload is a spot check (its task's range alone), which can confirm or outvote a
        held result but never become the task's."""
        held = c.execute(sql_validation.held_results, {"tid": task.id}).all()
        now = self.fleet.clock()
        if not held:
            if spot:  # nothing left to check (cannot happen while the check's lease is valid): redo
                c.execute(sql_validation.redo, {"tid": task.id, "now": now})
                return Verdict(redo=True)
            streak = partial(_streak, c, attempt.client)
            if not self.rule.wants_check(streak, task.validate_all):
                results.keep(task)
                return Verdict()
            return self._hold(c, task, attempt, results, tier, now)
        for h in held:
            if h.client != attempt.client and results.agrees(task, h.id):
                return self._agreed(c, task, h, held, attempt, results, spot, now)
        if len(held) + 1 >= MAX_RESULTS:
            error = f"{MAX_RESULTS} hosts sent {MAX_RESULTS} different transcripts: none can be trusted"
            c.execute(sql_validation.drop_held, {"tid": task.id})
            c.execute(sql_validation.disagreed, {"tid": task.id, "error": error, "now": now})
            return Verdict(disagreed=True)
        return self._hold(c, task, attempt, results, tier, now, spot)

    def _agreed(
        self,
        c: Tx,
        task: TaskView,
        match: Any,
        held: Sequence[Any],
        attempt: AttemptView,
        results: Results,
        spot: bool,
        now: float,
    ) -> Verdict:
        """The upload agrees with the held result `match`: the others are outvoted. A whole result of
        the two becomes the task's (the held one first); two spot checks send the task back."""
        kept = None
        if match.checked_ms is None:
            results.promote(task, match.id)
            kept = match.id
        elif not spot:
            results.keep(task)
        c.execute(sql_leases.mark_attempt_completed, {"aid": match.id, "now": now})
        cooled, rechecked, losers = [], [], [h.client for h in held if h.id != match.id]
        for h in held:
            if h.id != match.id:
                c.execute(sql_validation.outvote, {"aid": h.id})
                c.execute(sql_validation.outvoted, {"cname": h.client})
                if until := self.fleet.strike(c, h.client, now):
                    cooled.append((h.client, until))
                rechecked += self._recheck(c, h.client, results, now)
        for who in (match.client, attempt.client):
            c.execute(sql_validation.confirmed, {"cname": who})
        c.execute(sql_leases.credit_client_done, {"cname": match.client, "now": now})
        redo = match.checked_ms is not None and spot
        if redo:  # a range is no transcript: the task is transcribed whole again
            c.execute(sql_leases.mark_attempt_completed, {"aid": attempt.id, "now": now})
            c.execute(sql_leases.credit_client_done, {"cname": attempt.client, "now": now})
            c.execute(sql_validation.redo, {"tid": task.id, "now": now})
        confirmed = (match.client, attempt.client)
        return Verdict(
            kept=kept, confirmed=confirmed, outvoted=tuple(losers), cooled=cooled, rechecked=rechecked, redo=redo
        )

    def _recheck(self, c: Tx, host: str, results: Results, now: float) -> list[str]:
        """An outvoted host's results that went out unchecked (it was trusted) are held again for a
        check, a job's and a stitched file's parts too: the file's result stays until a check outvotes
        it (a part's file is stitched again once the part is done)."""
        reopened = []
        for aid, tid, file_id in c.execute(sql_validation.unchecked_results_of, {"cname": host}).all():
            if c.execute(sql_validation.others_completed, {"tid": tid, "aid": aid}).first() is not None:
                continue  # another host's result confirmed it
            task = task_row(c, tid, lock=True)
            if results.reopen(task, aid):
                c.execute(sql_validation.hold_attempt, {"aid": aid, "now": now})
                start, end = self.rule.spot(task.seconds)
                c.execute(sql_validation.reopen, {"tid": tid, "now": now, "start": start, "end": end})
                if file_id is not None:
                    c.execute(sql_validation.unstitch, {"tid": file_id, "now": now})
                reopened.append(tid)
        return reopened

    def _hold(
        self, c: Tx, task: TaskView, attempt: AttemptView, results: Results, tier: int, now: float, spot: bool = False
    ) -> Verdict:
        """The upload waits for a check; a whole result's checks get their range now (a held spot
        check's third host checks the range already chosen)."""
        results.hold(task, attempt.id)
        c.execute(sql_validation.hold_attempt, {"aid": attempt.id, "now": now})
        if not spot:
            start, end = self.rule.spot(task.seconds)
            params = {"tid": task.id, "tier": tier, "now": now, "start": start, "end": end}
            c.execute(sql_validation.to_checking, params)
        return Verdict(held=True)


def _streak(c: Tx, client: str) -> int:
    return int(c.execute(sql_validation.streak_of, {"cname": client}).scalar() or 0)
