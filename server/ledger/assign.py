"""The scheduler's view of the ledger: read the fleet inside a claim's transaction, let the policy
(server/scheduler.py) choose, and find the task it chose. The claim itself stays in leases.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .. import scheduler
from ..scheduler import Backlog, Fleet, Host, Running, SchedulerKind
from . import sql, sql_fleet
from .fleet import capabilities, learned_speeds, speed_key
from .statements import Tx
from .tiers import model_tier


@dataclass(frozen=True)
class Pick:
    task_id: str
    replica: bool  # a second copy of a running task
    host: Optional[Host] = None  # the claiming host as the policy saw it (None: FIFO)


@dataclass(frozen=True)
class Assigner:
    kind: SchedulerKind = SchedulerKind.SPEED
    replica_budget: float = 0.05  # replicas may cost at most this share of the library's audio
    # An idle host counts as part of the fleet this long after it asked (two polls at POLL_SECONDS=30):
    # work is held back for it only while it is likely to ask again.
    host_window: float = 60.0

    def pick(
        self,
        c: Tx,
        client: str,
        caps: Optional[dict[str, Any]],
        languages: Optional[Sequence[str]],
        probed: bool,
        now: float,
    ) -> Optional[Pick]:
        variant = (languages is not None, probed)
        params: dict[str, Any] = {"tier": model_tier((caps or {}).get("model"))}
        if languages is not None:
            params["langs"] = list(languages)
        params["priority"] = c.execute(sql.top_priority[variant], params).scalar() or 0
        if self.kind == SchedulerKind.FIFO:
            task_id = c.execute(sql.pick_queued[variant], params).scalar()
            return Pick(task_id, False) if task_id else None
        count, seconds, shortest = c.execute(sql_fleet.backlog[variant], params).one()
        fleet, running = self._fleet(c, client, caps, Backlog(count, float(seconds), float(shortest or 0)), now)
        choice = scheduler.choose(fleet)
        if isinstance(choice, scheduler.Longest):
            task_id = c.execute(
                sql_fleet.pick_longest[variant], {**params, "max_ms": choice.max_seconds * 1000}
            ).scalar()
        elif isinstance(choice, scheduler.Shortest):
            task_id = c.execute(sql_fleet.pick_shortest[variant], params).scalar()
        else:
            task_id = None
        if task_id:
            return Pick(task_id, False, fleet.me)
        if count or not self.replica_budget:
            return None
        spent, library = c.execute(sql_fleet.replica_budget).one()
        copy = scheduler.replica(fleet, running, self.replica_budget * float(library) - float(spent))
        return Pick(copy, True, fleet.me) if copy else None

    def _fleet(
        self, c: Tx, client: str, caps: Optional[dict[str, Any]], backlog: Backlog, now: float
    ) -> tuple[Fleet, list[Running]]:
        """The hosts (speed, when each is free) and the tasks a replica could overtake."""
        learned = {key: speed for key, (speed, _) in learned_speeds(c).items()}
        hosts = {
            r.name: capabilities(r.capabilities)
            for r in c.execute(sql_fleet.hosts, {"since": now - self.host_window, "now": now})
        }
        hosts[client] = caps or {}
        rows = c.execute(sql_fleet.running).all()
        for r in rows:
            hosts.setdefault(r.client, {})  # a legacy client holding a lease still works
        guesses = {name: learned.get(speed_key(name, h)) or _positive(h.get("rtf")) for name, h in hosts.items()}
        default = scheduler.fleet_speed([s for s in guesses.values() if s])
        speeds = {name: s or default for name, s in guesses.items()}
        free_at: dict[str, float] = {}
        running = []
        for r in rows:
            finish = scheduler.holder_finish(now, float(r.seconds), speeds[r.client], r.eta, r.progress, r.heartbeat_at)
            free_at[r.client] = max(free_at.get(r.client, now), finish)
            # No copy yet means one holder: a task is granted once, and copied at most once (replicas).
            if r.replicas == 0 and r.client != client and r.seconds > 0:
                running.append(Running(r.task_id, float(r.seconds), finish))
        me = Host(client, speeds[client], free_at.get(client, now))
        others = tuple(Host(name, speeds[name], free_at.get(name, now)) for name in sorted(hosts) if name != client)
        return Fleet(now, me, others, backlog), running


def _positive(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None
