"""The fleet as this server's claims see it: one snapshot, read at most once a second outside any
write transaction (and off the event loop: server/group_commit.py), shared by every claim and kept
current between reads by what this server books: its grants, and the results, failures and
expiries that free a host.

A claim used to read every host, every learned speed and every running task inside its write
transaction: 6 ms with 10 hosts, 42 ms with 3,000. Here that reading happens once a second whatever
the load, and a claim costs a dictionary lookup, a few sums over the hosts' classes (a handful: one
per language set and model tier) and one index walk. Several servers on one database each keep
their own snapshot; the grant itself stays one conditional row update, so they never disagree
about who holds a task, only (for under a second) about how busy the others are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from . import policy
from .database import Database
from .fleet import capabilities, first_guess, learned_speeds, reach, speed_key
from .policy import Class, Fleet, Group, Host, Reach, Running
from .sql import fleet as sql_fleet
from .sql.run import Tx
from .states import Protocol

GroupKey = tuple[int, str, int, bool]  # priority, language, least model tier, translate


@dataclass
class _Class:
    speed: float = 0.0
    held: float = 0.0  # audio seconds the class's hosts still have to do
    frontier: tuple[Host, ...] = ()


@dataclass
class _State:
    """Mutable, under the lock: the database as last read, plus this server's grants since."""

    taken_at: float
    hosts: dict[str, Host]
    classes: dict[Reach, _Class]
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


@dataclass(frozen=True)
class View:
    """What one claim needs: the policy's input, and what the replica step and the reply need."""

    fleet: Fleet
    running: Sequence[Running]  # as last read: the replica step leaves out `closed`
    closed: frozenset[str]  # tasks this server copied, or saw finished, since
    replica_spent: float  # audio seconds spent on replicas so far
    library: float  # the whole library's audio seconds
    probing: bool  # work for this host waits only for its length to be probed


def _guess(
    learned: dict[tuple[str, str, str], float], fastest: float, name: str, caps: dict[str, Any]
) -> Optional[float]:
    """A host's speed: measured for its model and backend, else its benchmark (clamped), else None."""
    return learned.get(speed_key(name, caps)) or first_guess(caps.get("rtf"), fastest)


def _queue_for(
    r: Reach, groups: dict[GroupKey, Group], unprobed: dict[GroupKey, int]
) -> tuple[tuple[Group, ...], bool]:
    """The groups with work left, and whether work `r` may take waits only for its length."""
    probing = any(n and r.takes(lang, tier, translate) for (_, lang, tier, translate), n in unprobed.items())
    return tuple(g for g in groups.values() if g.count > 0), probing


def _join(st: _State, host: Host, now: float) -> None:
    """A host the read did not know counts in its class: its speed, and its place on the frontier."""
    st.hosts[host.name] = host
    k = st.classes.setdefault(host.reach, _Class())
    k.speed += host.speed
    k.frontier = policy.frontier((*k.frontier, host), now)


class Snapshots:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float],
        *,
        host_window: float,
        probed_only: bool,
        max_age: float = 1.0,
    ):
        self.db = db
        self.clock = clock
        self.host_window = host_window
        self.probed_only = probed_only
        self.max_age = max_age
        self._lock = threading.Lock()
        self._state: Optional[_State] = None
        self._reading = False  # a claim is reading a new snapshot
        self._age = max_age  # how old it may get: max_age, or longer where reading is slow

    def refresh(self) -> None:
        """Read the fleet anew if the snapshot is too old. One claim reads; the others go on with the
        old snapshot meanwhile rather than queue behind it."""
        if self.due():
            self.read()

    def due(self) -> bool:
        """Whether the snapshot is too old and nobody is reading it anew. True makes the caller its
        reader: it must call read() (server/group_commit.py does, in a worker thread)."""
        now = self.clock()
        with self._lock:
            st = self._state
            due = (st is None or not 0 <= now - st.taken_at < self._age) and (st is None or not self._reading)
            self._reading = self._reading or due
        return due

    def read(self) -> None:
        try:
            first = self._state is None  # it also pays for compiling the statements
            started = time.perf_counter()
            fresh = self._read(self.clock())
            # Reading costs at most a twentieth of one core, however large the fleet. Wall time, not
            # this thread's CPU: on PostgreSQL most of a read's cost is the database's.
            if self.max_age and not first:
                self._age = max(self.max_age, 20 * (time.perf_counter() - started))
            with self._lock:
                self._state = fresh
        finally:
            self._reading = False

    def view(self, client: str, caps: Optional[dict[str, Any]], languages: Optional[Sequence[str]]) -> View:
        """The fleet for `client`'s claim, from the snapshot as it is: claims refresh() it before
        their transaction, and a batch's claims see the grants before them (granted)."""
        now = self.clock()
        with self._lock:
            st = self._state
        if st is None:
            self.refresh()
        with self._lock:
            st = self._state
            assert st is not None
            me = self._me(st, client, caps, languages, now)
            classes = tuple(
                Class(r, k.speed, max(0.0, k.held), tuple(st.hosts.get(h.name, h) for h in k.frontier))
                for r, k in st.classes.items()
            )
            groups, probing = _queue_for(me.reach, st.groups, st.unprobed)
            fleet = Fleet(now, me, classes, groups)
            return View(fleet, st.running, frozenset(st.closed), st.replica_spent, st.library, probing)

    def granted(self, host: Host, key: Optional[GroupKey], task_id: str, seconds: float, copyable: bool) -> None:
        """A claim of this server took a task (`key`: from that queue group; None: a replica): count
        it at once rather than at the next read. `copyable`: a replica could overtake it later."""
        with self._lock:
            st = self._state
            if st is None:
                return
            now = self.clock()
            mine = st.hosts.get(host.name)
            if mine is None:  # another claim re-read the fleet since this one's view, before its row was there
                mine = host
                if host.name not in st.cooling:
                    _join(st, host, now)
            finish = policy.finish_at(mine, seconds, now)
            st.hosts[host.name] = replace(mine, free_at=finish)
            st.classes.setdefault(mine.reach, _Class()).held += seconds
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

    def let_go(self, client: str, task_id: str) -> None:
        """`client` holds `task_id` no more (delivered, failed or expired): from now it is busy only
        with what else it holds (a task it prefetched), and the task is nobody's to copy. Kept at once,
        as grants are: a host asks for its next task the moment it uploads, and the next read may be a
        second away."""
        with self._lock:
            st = self._state
            if st is None:
                return
            now = self.clock()
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

    def regroup(self, c: Tx, view: View) -> View:
        """The queue's groups read anew through the claim's own transaction (it sees what that
        transaction changed, an expired lease put back, say): the snapshot missed queued work."""
        groups, unprobed = self._groups(c.execute(sql_fleet.queue_groups).all())
        with self._lock:
            if self._state is not None:
                self._state.groups, self._state.unprobed = groups, unprobed
        queued, probing = _queue_for(view.fleet.me.reach, groups, unprobed)
        return replace(view, fleet=replace(view.fleet, groups=queued), probing=probing)

    # --- reading ----------------------------------------------------------------------------------

    def _me(
        self, st: _State, client: str, caps: Optional[dict[str, Any]], langs: Optional[Sequence[str]], now: float
    ) -> Host:
        """The claiming host; one the snapshot has not seen joins its class now, unless it is cooling
        down (it asks all the same, and gets nothing: as a rival it would hold back everyone's work)."""
        speed = _guess(st.learned, st.fastest, client, caps or {}) or st.default_speed
        known = st.hosts.get(client)
        # A legacy client's workers all ask under one name: each ask is a worker's, never a prefetch.
        measured = caps is None or speed_key(client, caps) in st.learned
        me = Host(client, speed, known.free_at if known else now, reach(caps, langs), measured)
        if (known is None or known.reach != me.reach) and client not in st.cooling:
            _join(st, me, now)
        return me

    def _read(self, now: float) -> _State:
        window = {"since": now - self.host_window, "now": now}
        with self.db.reading() as c:
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
        guesses = {name: _guess(learned, fastest, name, h) for name, (h, _) in caps.items()}
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
            r: _Class(
                sum(h.speed for h in hs),
                sum(h.speed * max(0.0, h.free_at - now) for h in hs),
                policy.frontier(hs, now),
            )
            for r, hs in members.items()
        }
        groups, unprobed = self._groups(group_rows)
        return _State(
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

    def _groups(self, rows: Sequence[Any]) -> tuple[dict[GroupKey, Group], dict[GroupKey, int]]:
        groups: dict[GroupKey, Group] = {}
        unprobed: dict[GroupKey, int] = {}
        for g in rows:
            key = (int(g.priority), str(g.language), int(g.min_tier), bool(g.translate))
            if self.probed_only and not g.probed:
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
