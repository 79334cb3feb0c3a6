"""The fleet's state as one server's claims see it, how it is read from the database, and how this
server's own grants and releases change it between reads (server/ledger/snapshot.py keeps it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from . import policy
from .database import Database
from .fleet import capabilities, first_guess, learned_speeds, reach, speed_key
from .policy import Group, Host, Reach, Running
from .sql import fleet as sql_fleet
from .states import Protocol

GroupKey = tuple[int, str, int, bool]  # priority, language, least model tier, translate


@dataclass
class ClassSums:
    speed: float = 0.0
    held: float = 0.0  # audio seconds the class's hosts still have to do
    frontier: tuple[Host, ...] = ()


@dataclass
class FleetState:
    """The database as last read, plus this server's grants and releases since."""

    taken_at: float
    hosts: dict[str, Host]
    classes: dict[Reach, ClassSums]
    groups: dict[GroupKey, Group]
    unprobed: dict[GroupKey, int]  # queued, but their length is not known yet
    running: list[Running]  # appended to by this server's grants; views read it, never change it
    learned: dict[tuple[str, str, str], float]
    default_speed: float
    fastest: float
    replica_spent: float
    library: float
    cooling: frozenset[str] = frozenset()  # hosts cooling down: they ask, but are not part of the fleet
    holding: dict[str, dict[str, float]] = field(default_factory=dict)  # host -> task -> audio seconds
    closed: set[str] = field(default_factory=set)  # tasks copied or finished since the read: none to copy


def guess_speed(
    learned: dict[tuple[str, str, str], float], fastest: float, name: str, caps: dict[str, Any]
) -> Optional[float]:
    """A host's speed: measured for its model and backend, else its benchmark (clamped), else None."""
    return learned.get(speed_key(name, caps)) or first_guess(caps.get("rtf"), fastest)


def join(st: FleetState, host: Host, now: float) -> None:
    """A host the read did not know counts in its class: its speed, and its place on the frontier."""
    st.hosts[host.name] = host
    k = st.classes.setdefault(host.reach, ClassSums())
    k.speed += host.speed
    k.frontier = policy.frontier((*k.frontier, host), now)


def grant(
    st: FleetState, host: Host, key: Optional[GroupKey], task_id: str, seconds: float, copyable: bool, now: float
) -> None:
    """`host` took `task_id` (`key`: from that queue group; None: a replica). A state read after the
    grant was booked has it already (the host holds the task there): nothing to add then."""
    if task_id in st.holding.get(host.name, {}):
        return
    mine = st.hosts.get(host.name)
    if mine is None:  # the state was read since the claim's view, before the host's row was there
        mine = host
        if host.name not in st.cooling:
            join(st, host, now)
    finish = policy.finish_at(mine, seconds, now)
    st.hosts[host.name] = replace(mine, free_at=finish)
    st.classes.setdefault(mine.reach, ClassSums()).held += seconds
    st.holding.setdefault(host.name, {})[task_id] = seconds
    if key is None:
        st.closed.add(task_id)  # at most one copy: do not offer it again
        st.replica_spent += seconds
        return
    if key in st.groups:
        g = st.groups[key]
        st.groups[key] = replace(g, count=g.count - 1, seconds=max(0.0, g.seconds - seconds))
    if copyable and seconds > 0:
        st.running.append(Running(task_id, seconds, finish, key[1], key[2], key[3]))


def release(st: FleetState, client: str, task_id: str, now: float) -> None:
    """`client` holds `task_id` no more: it is busy only with what else it holds, and the task is
    nobody's to copy. A state that no longer shows the task held changes only in the latter."""
    st.closed.add(task_id)
    held = st.holding.get(client, {})
    host = st.hosts.get(client)
    if held.pop(task_id, None) is None or host is None:
        return
    free_at = now + sum(held.values()) / host.speed
    k = st.classes.get(host.reach)
    if k is not None:
        k.held += host.speed * (free_at - max(now, host.free_at))
    st.hosts[client] = replace(host, free_at=free_at)


def read_fleet(db: Database, now: float, host_window: float, probed_only: bool) -> FleetState:
    """The fleet and the queue as the database has them now (a read transaction of its own)."""
    window = {"since": now - host_window, "now": now}
    with db.reading() as c:
        learned_rows = learned_speeds(c)
        host_rows = c.execute(sql_fleet.hosts, window).all()
        cooling = frozenset(c.execute(sql_fleet.cooling, window).scalars())
        running_rows = c.execute(sql_fleet.running).all()
        group_rows = c.execute(sql_fleet.queue_groups).all()
        spent, library = c.execute(sql_fleet.replica_budget).one()
    learned = {key: s for key, (s, _) in learned_rows.items()}
    fastest = max(learned.values(), default=0.0)
    parsed: dict[str, tuple[dict[str, Any], Reach]] = {}  # most hosts send the same capabilities
    for raw in {r.capabilities for r in host_rows}:
        sent = capabilities(raw)
        parsed[raw] = (sent, reach(sent or None))
    caps = {r.name: parsed[r.capabilities] for r in host_rows}
    for r in running_rows:
        caps.setdefault(r.client, ({}, Reach()))  # a legacy client holding a lease works too
    guesses = {name: guess_speed(learned, fastest, name, h) for name, (h, _) in caps.items()}
    default = policy.fleet_speed([s for s in guesses.values() if s])
    speeds = {name: s or default for name, s in guesses.items()}
    free_at: dict[str, float] = {}
    holding: dict[str, dict[str, float]] = {}
    running = []
    for r in running_rows:
        holding.setdefault(r.client, {})[r.task_id] = float(r.seconds)
        finish = policy.holder_finish(
            now, float(r.seconds), speeds[r.client], r.eta, r.progress, r.heartbeat_at, r.paused is not None
        )
        free_at[r.client] = max(free_at.get(r.client, now), finish)
        # No copy yet means one holder (a task is copied at most once); a legacy holder cannot be
        # stopped; a check is itself the second copy.
        if r.replicas == 0 and r.seconds > 0 and r.protocol != Protocol.LEGACY and not r.checking:
            running.append(Running(r.task_id, float(r.seconds), finish, r.language, r.min_tier, bool(r.translate)))
    hosts = {name: Host(name, speeds[name], free_at.get(name, now), r) for name, (_, r) in caps.items()}
    members: dict[Reach, list[Host]] = {}
    for host in hosts.values():
        members.setdefault(host.reach, []).append(host)
    classes = {
        r: ClassSums(
            sum(h.speed for h in hs),
            sum(h.speed * max(0.0, h.free_at - now) for h in hs),
            policy.frontier(hs, now),
        )
        for r, hs in members.items()
    }
    groups, unprobed = queue_groups(group_rows, probed_only)
    return FleetState(
        taken_at=now,
        hosts=hosts,
        classes=classes,
        groups=groups,
        unprobed=unprobed,
        running=running,
        learned=learned,
        default_speed=default,
        fastest=fastest,
        replica_spent=float(spent),
        library=float(library),
        cooling=cooling,
        holding=holding,
    )


def queue_groups(rows: Sequence[Any], probed_only: bool) -> tuple[dict[GroupKey, Group], dict[GroupKey, int]]:
    """The queued work by group; `probed_only`: work whose length is not known yet is counted apart."""
    groups: dict[GroupKey, Group] = {}
    unprobed: dict[GroupKey, int] = {}
    for g in rows:
        key = (int(g.priority), str(g.language), int(g.min_tier), bool(g.translate))
        if probed_only and not g.probed:
            unprobed[key] = unprobed.get(key, 0) + int(g.count)
            continue
        old = groups.get(key)
        count, seconds = int(g.count), float(g.seconds)
        shortest, longest = float(g.shortest or 0), float(g.longest or 0)
        if old:  # probed and unprobed rows of one group, when splitting is off
            count, seconds = old.count + count, old.seconds + seconds
            shortest, longest = min(old.shortest, shortest), max(old.longest, longest)
        groups[key] = Group(key[1], key[2], key[0], count, seconds, shortest, key[3], longest)
    return groups, unprobed
