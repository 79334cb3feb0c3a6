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

import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Optional

from .database import Database
from .fleet import reach, speed_key
from .fleet_state import FleetState, GroupKey, grant, guess_speed, join, queue_groups, read_fleet, release
from .policy import Class, Fleet, Group, Host, Reach, Running
from .sql import fleet as sql_fleet
from .sql.run import Tx


@dataclass(frozen=True)
class View:
    """What one claim needs: the policy's input, and what the replica step and the reply need."""

    fleet: Fleet
    running: Sequence[Running]  # as last read: the replica step leaves out `closed`
    closed: frozenset[str]  # tasks this server copied, or saw finished, since
    replica_spent: float  # audio seconds spent on replicas so far
    library: float  # the whole library's audio seconds
    probing: bool  # work for this host waits only for its length to be probed


def _queue_for(
    r: Reach, groups: dict[GroupKey, Group], unprobed: dict[GroupKey, int]
) -> tuple[tuple[Group, ...], bool]:
    """The groups with work left, and whether work `r` may take waits only for its length."""
    probing = any(n and r.takes(lang, tier, translate) for (_, lang, tier, translate), n in unprobed.items())
    return tuple(g for g in groups.values() if g.count > 0), probing


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
        self._state: Optional[FleetState] = None
        self._reading = False  # a claim is reading a new snapshot
        self._since: list[list[Callable[[FleetState], None]]] = []  # per read under way: what was booked since
        self._age = max_age  # how old it may get: max_age, or longer where reading is slow

    def refresh(self) -> None:
        """Read the fleet anew if the snapshot is too old. One claim reads; the others go on with the
        old snapshot meanwhile rather than queue behind it."""
        if self.due():
            self.read()

    @property
    def ready(self) -> bool:
        """Whether a snapshot was read: claims may go on with it while a new one is read."""
        return self._state is not None

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
        since: list[Callable[[FleetState], None]] = []  # what this server books while this read runs
        try:
            first = self._state is None  # it also pays for compiling the statements
            started = time.perf_counter()
            with self._lock:
                self._since.append(since)
            fresh = read_fleet(self.db, self.clock(), self.host_window, self.probed_only)
            # Reading costs at most a twentieth of one core, however large the fleet. Wall time, not
            # this thread's CPU: on PostgreSQL most of a read's cost is the database's.
            if self.max_age and not first:
                self._age = max(self.max_age, 20 * (time.perf_counter() - started))
            with self._lock:
                for change in since:
                    change(fresh)
                self._state = fresh
        finally:
            with self._lock:
                self._since = [other for other in self._since if other is not since]
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
        self._change(functools.partial(grant, host=host, key=key, task_id=task_id, seconds=seconds, copyable=copyable))

    def let_go(self, client: str, task_id: str) -> None:
        """`client` holds `task_id` no more (delivered, failed or expired): from now it is busy only
        with what else it holds (a task it prefetched), and the task is nobody's to copy. Kept at once,
        as grants are: a host asks for its next task the moment it uploads, and the next read may be a
        second away."""
        self._change(functools.partial(release, client=client, task_id=task_id))

    def _change(self, change: Callable[..., None]) -> None:
        """Apply a grant or a release to the snapshot, and again to the one being read, if any: that
        read may have begun before it was booked (grant() and release() skip what a read has)."""
        with self._lock:
            if self._state is None:
                return
            step = functools.partial(change, now=self.clock())
            step(self._state)
            for since in self._since:
                since.append(step)

    def regroup(self, c: Tx, view: View) -> View:
        """The queue's groups read anew through the claim's own transaction (it sees what that
        transaction changed, an expired lease put back, say): the snapshot missed queued work."""
        groups, unprobed = queue_groups(c.execute(sql_fleet.queue_groups).all(), self.probed_only)
        with self._lock:
            if self._state is not None:
                self._state.groups, self._state.unprobed = groups, unprobed
        queued, probing = _queue_for(view.fleet.me.reach, groups, unprobed)
        return replace(view, fleet=replace(view.fleet, groups=queued), probing=probing)

    def _me(
        self, st: FleetState, client: str, caps: Optional[dict[str, Any]], langs: Optional[Sequence[str]], now: float
    ) -> Host:
        """The claiming host; one the snapshot has not seen joins its class now, unless it is cooling
        down (it asks all the same, and gets nothing: as a rival it would hold back everyone's work)."""
        speed = guess_speed(st.learned, st.fastest, client, caps or {}) or st.default_speed
        known = st.hosts.get(client)
        # A legacy client's workers all ask under one name: each ask is a worker's, never a prefetch.
        measured = caps is None or speed_key(client, caps) in st.learned
        me = Host(client, speed, known.free_at if known else now, reach(caps, langs), measured)
        if (known is None or known.reach != me.reach) and client not in st.cooling:
            join(st, me, now)
        return me
