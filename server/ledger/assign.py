"""The scheduler's view of the ledger: the fleet from the shared snapshot (snapshot.py), the policy
(policy.py) chooses, and one index walk finds the task it chose. The grant itself stays
in leases.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional, Union

from . import policy
from .fleet import reach
from .policy import Host, Reach, SchedulerKind
from .snapshot import GroupKey, Snapshots, View
from .sql import fleet as sql_fleet
from .sql import leases as sql_leases
from .sql import validation as sql_validation
from .sql.run import Tx
from .validation import TIER_WAIT


@dataclass(frozen=True)
class Pick:
    task_id: str
    replica: bool  # a second copy of a running task
    host: Optional[Host] = None  # the claiming host as the policy saw it (None: FIFO)
    group: Optional[GroupKey] = None
    check: bool = False  # a check of a held result (validation.py)


class WaitReason(str, Enum):
    """Why a host that asked gets nothing though work it may take is queued."""

    FASTER_HOST = "faster-host"  # another host that may take it would finish it sooner
    TAKEN = "taken"  # what the snapshot offered was taken a moment ago: ask again at once
    PROBING = "probing"  # its work waits for the server to read the files' lengths
    CHECKING = "checking"  # a held result it may check is with another checker now (validation)
    MEASURING = "measuring"  # the server has not measured it yet: its next task comes with its first result

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Wait:
    reason: WaitReason
    retry_after: float  # seconds


Outcome = Union[Pick, Wait, None]  # None: nothing is queued for this host
TAKEN = Wait(WaitReason.TAKEN, 1.0)
POLICY_WAITS = (WaitReason.FASTER_HOST, WaitReason.MEASURING)  # the policy's own word: not a stale snapshot


@dataclass(frozen=True)
class Assigner:
    kind: SchedulerKind = SchedulerKind.SPEED
    replica_budget: float = 0.05  # replicas may cost at most this share of the library's audio
    # An idle host counts as part of the fleet this long after it asked (two polls at POLL_SECONDS=30):
    # work is held back for it only while it is likely to ask again.
    host_window: float = 60.0
    # A host told to wait asks again after this long: soon enough that work held back for a faster
    # host that stopped asking goes out within host_window + retry_after.
    retry_after: float = 15.0

    def pick(
        self,
        c: Tx,
        client: str,
        snapshots: Optional[Snapshots],
        view: Optional[View],
        caps: Optional[dict[str, Any]],
        languages: Optional[Sequence[str]],
        probed: bool,
        now: float,
        validating: bool = False,
    ) -> Outcome:
        """`view`: the fleet as the snapshot had it before this transaction (None: FIFO, which needs
        none). The snapshot may be up to a second old: what it offers is checked by the picks, and
        a "nothing" is checked against the queue itself (one index probe) before it is believed.
        A held result this host may check goes first: its task is finished work waiting. `validating`:
        results may be held, so a host with nothing to do waits while others work (it may have a
        check to do) rather than hearing "nothing"."""
        r = reach(caps, languages)
        if check := self._check(c, client, r, now):
            return check
        outcome = self._pick(c, snapshots, view, r, caps is not None, probed)
        if outcome is None and self._check_later(c, client, r, validating):
            return Wait(WaitReason.CHECKING, 5.0)
        return outcome

    def _pick(
        self, c: Tx, snapshots: Optional[Snapshots], view: Optional[View], r: Reach, stoppable: bool, probed: bool
    ) -> Outcome:
        """New work from the queue, or a replica. `stoppable`: a v1 client, which can be told to stop a
        replica that lost (a legacy client, with no capabilities, cannot)."""
        if view is None or snapshots is None:
            task_id = self._first_queued(c, r, probed)
            return Pick(task_id, False) if task_id else None
        outcome = self._from_queue(c, view, probed)
        if isinstance(outcome, Pick) or (isinstance(outcome, Wait) and outcome.reason in POLICY_WAITS):
            return outcome
        if self._first_queued(c, view.fleet.me.reach, probed) is not None:  # the snapshot missed it
            view = snapshots.regroup(c, view)
            outcome = self._from_queue(c, view, probed)
            return outcome if outcome is not None else TAKEN
        if view.probing:
            return Wait(WaitReason.PROBING, min(self.retry_after, 5.0))
        if self.replica_budget and stoppable:
            budget = self.replica_budget * view.library - view.replica_spent
            running = [run for run in view.running if run.task_id not in view.closed]
            if copy := policy.replica(view.fleet, running, budget):
                return Pick(copy, True, view.fleet.me)
        return None

    def _from_queue(self, c: Tx, view: View, probed: bool) -> Outcome:
        fleet = view.fleet
        choices = policy.choose(fleet)
        for choice in choices:
            g = choice.group
            params = {"priority": g.priority, "lang": g.language, "min_tier": g.min_tier, "translate": g.translate}
            if isinstance(choice, policy.Longest):
                q, params["max_ms"] = sql_fleet.pick_longest[probed], choice.max_seconds * 1000
            else:
                q = sql_fleet.pick_shortest[probed]
            if task_id := c.execute(q, params).scalar():
                return Pick(task_id, False, fleet.me, (g.priority, g.language, g.min_tier, g.translate))
        if choices:
            return TAKEN
        if policy.mine(fleet):
            reason = WaitReason.MEASURING if policy.unmeasured_and_busy(fleet) else WaitReason.FASTER_HOST
            return Wait(reason, self.retry_after)
        return None

    @staticmethod
    def _check(c: Tx, client: str, r: Reach, now: float) -> Optional[Pick]:
        params = _reach(r, cname=client, stale=now - TIER_WAIT)
        task_id = c.execute(sql_validation.pick_check[r.languages is not None], params).scalar()
        return Pick(task_id, False, check=True) if task_id else None

    @staticmethod
    def _check_later(c: Tx, client: str, r: Reach, validating: bool) -> bool:
        """A check may come its way; or a vote it has a spot check in may send a task back to the queue."""
        params = _reach(r, cname=client)
        statement = sql_validation.check_later[(r.languages is not None, validating)]
        if c.execute(statement, params).first() is not None:
            return True
        return validating and c.execute(sql_validation.spot_pending_of, {"cname": client}).first() is not None

    @staticmethod
    def _first_queued(c: Tx, r: Reach, probed: bool) -> Optional[str]:
        """The next queued task `r` may take in path order (FIFO's pick), or None."""
        variant = (r.languages is not None, probed)
        params = _reach(r)
        params["priority"] = c.execute(sql_leases.top_priority[variant], params).scalar() or 0
        return c.execute(sql_leases.pick_queued[variant], params).scalar()


def _reach(r: Reach, **extra: Any) -> dict[str, Any]:
    """The parameters that say what a host may take: its tier, whether it translates, and its
    languages if it names them."""
    params: dict[str, Any] = {"tier": r.tier, "translate": r.translate, **extra}
    if r.languages is not None:
        params["langs"] = sorted(r.languages)
    return params
