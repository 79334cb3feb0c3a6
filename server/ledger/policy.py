"""Which task a host gets: the scheduling policy, in one place, free of SQL, HTTP and clocks.

The goal is the batch's makespan. Its lower bound is the larger of the work left divided by the
fleet's summed speed, and each group's work divided by the speed of the hosts that may take it: a
library with French files and fast English-only hosts ends when the multilingual hosts are through
with the French. With hosts 10x apart, handing out tasks in path order misses it by 2-6x, because
a slow host that takes a long task near the end makes everyone wait for it.

Queued tasks come in groups that the same hosts may take (one language, one least model tier, one
priority); hosts in classes that may take the same groups (`Reach`: languages and model tier).
Every step counts only the hosts that may take the tasks in question (`SCHEDULER=speed`):

1. A group's end: now + (the work that only its eligible hosts may take + what they hold) / their
   summed speed. The batch's end T is the latest of these and of the whole fleet's (all work over
   all speeds).
2. A host's capacity is what it can transcribe between the moment it is free (a prefetching client
   is still busy with its current task) and T. Among the groups it may take (the highest priority
   first), the one that ends latest goes first: a multilingual host takes the French that nobody
   else can take before the English that fast hosts will. From it, the longest task that fits;
   groups that end together (French and German, both only for the multilingual hosts) are one pool,
   the group whose longest task fits best first. Early on everything fits, so long work goes out
   first (LPT); near the end slow hosts fit only short tasks, and fast hosts get the long ones.
   A v1 host the server has not measured yet (its speed is its benchmark's word, off by x2 either
   way on a real fleet) holds one task at a time: a second one, prefetched, would be sized by that
   word and might end the batch late on a host slower than it said. (A legacy client's workers all
   ask under one name, and never prefetch: each of its asks may get a task.)
3. When nothing fits, the host gets a group's shortest task only if no other host that may take it
   would finish it sooner (each rival's own free time plus the task at its speed). Otherwise it
   waits (`Wait`, with a reason and when to ask again): an idle slow host costs nothing, a slow host
   holding the last long task costs the batch. A rival counts only while it asks (ledger:
   `host_window`), so a task waits at most that window plus one `Retry-After` after the last faster
   eligible host stops asking; with no eligible rival, an idle host always gets it.
4. Tail replication: when nothing is queued for it, an idle host takes a second copy of a running
   task it may take if it would finish at least a fifth sooner than the holder is predicted to
   (heartbeat progress, or the prediction made at grant). At most one extra copy per task, within
   REPLICA_BUDGET, never of a legacy client's task (it cannot be told to stop). The first result
   wins; the other holder learns it from its next heartbeat (409).

Speeds are audio seconds per second, measured by the server (ledger/fleet.py); a host not measured
yet counts at its benchmark (`rtf`, clamped), else at the fleet's median. Files not probed yet
count as 0 s. The ledger keeps the classes' sums in a snapshot (ledger/snapshot.py), so a claim
costs the same with ten hosts or ten thousand: each rival class is represented by its few hosts
that no other host of the class beats on both free time and speed (`frontier`).

`SCHEDULER=fifo` hands out the next task in path order to whoever asks, for comparison (the ledger
does that without asking this module: ledger/assign.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Union

# A replica must beat its holder by this share of the holder's remaining time, or it is waste.
REPLICA_MIN_GAIN = 0.2
FRONTIER = 32  # rivals kept per class for step 3: the best on (free time, speed), no more


class SchedulerKind(str, Enum):
    SPEED = "speed"
    FIFO = "fifo"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Reach:
    """What a host may take: these languages (None: all), tasks asking for at most this tier, and
    tasks to translate if it can."""

    languages: Optional[frozenset[str]] = None
    tier: int = 0
    translate: bool = False

    def takes(self, language: str, min_tier: int, translate: bool = False) -> bool:
        fits = (self.languages is None or language in self.languages) and self.tier >= min_tier
        return fits and (self.translate or not translate)


@dataclass(frozen=True)
class Host:
    name: str
    speed: float  # audio seconds per second
    free_at: float  # when the work it already holds is predicted done (<= now: idle)
    reach: Reach = Reach()
    measured: bool = True  # False: `speed` is its benchmark's word, or the fleet's median (only `me`'s is read)


@dataclass(frozen=True)
class Group:
    """Queued tasks the same hosts may take."""

    language: str
    min_tier: int
    priority: int
    count: int
    seconds: float
    shortest: float
    translate: bool = False
    longest: float = 0.0  # as last read (a hint: it may have been taken since)

    def open_to(self, reach: Reach) -> bool:
        return reach.takes(self.language, self.min_tier, self.translate)


@dataclass(frozen=True)
class Class:
    """The hosts of one reach: summed speed, the work they hold (audio seconds), their best rivals."""

    reach: Reach
    speed: float
    held: float
    frontier: tuple[Host, ...]


@dataclass(frozen=True)
class Fleet:
    now: float
    me: Host
    classes: tuple[Class, ...]  # the whole fleet, me included
    groups: tuple[Group, ...]  # every queued group, also those `me` may not take


@dataclass(frozen=True)
class Running:
    """A task in progress with one holder, which a replica could overtake."""

    task_id: str
    seconds: float
    finish_at: float  # its holder's predicted finish
    language: str = "auto"
    min_tier: int = 0
    translate: bool = False


@dataclass(frozen=True)
class Longest:
    """The longest queued task of `group` of at most `max_seconds`."""

    group: Group
    max_seconds: float


@dataclass(frozen=True)
class Shortest:
    """The shortest queued task of `group`."""

    group: Group


Choice = Union[Longest, Shortest]


def group_ends(fleet: Fleet) -> list[float]:
    """When each group (in `fleet.groups` order) could end at the earliest (step 1): its eligible
    hosts must also do every group that only they may take (French and German both wait for the
    multilingual hosts). Groups with the same eligible classes are summed once."""
    eligible = [frozenset(i for i, c in enumerate(fleet.classes) if g.open_to(c.reach)) for g in fleet.groups]
    work: dict[frozenset[int], float] = {}
    for g, e in zip(fleet.groups, eligible, strict=True):
        work[e] = work.get(e, 0.0) + g.seconds
    ends: dict[frozenset[int], float] = {}
    for e in work:
        speed = sum(fleet.classes[i].speed for i in e)
        if speed <= 0:
            ends[e] = fleet.now  # nobody may take it now: it sets no pace
            continue
        mine = sum(w for other, w in work.items() if other <= e)
        ends[e] = fleet.now + (mine + sum(fleet.classes[i].held for i in e)) / speed
    return [ends[e] for e in eligible]


def projected_end(fleet: Fleet, ends: Optional[list[float]] = None) -> float:
    """The batch's end if every host works until the same moment, bounded by each group's (step 1)."""
    speed = sum(c.speed for c in fleet.classes)
    work = sum(g.seconds for g in fleet.groups) + sum(c.held for c in fleet.classes)
    overall = fleet.now + work / speed if speed > 0 else fleet.now  # no speed known: it sets no pace
    return max([overall, *(group_ends(fleet) if ends is None else ends)])


def finish_at(host: Host, seconds: float, now: float) -> float:
    return max(now, host.free_at) + seconds / host.speed


def mine(fleet: Fleet) -> list[Group]:
    """The groups `fleet.me` may take, of the highest priority among them."""
    groups = [g for g in fleet.groups if g.count > 0 and g.open_to(fleet.me.reach)]
    top = max((g.priority for g in groups), default=0)
    return [g for g in groups if g.priority == top]


def choose(fleet: Fleet) -> list[Choice]:
    """What `fleet.me` should get, in the order to try (the ledger's rows may have moved since the
    snapshot: the next choice is tried when one finds nothing). Empty: wait (steps 2 and 3)."""
    groups = mine(fleet)
    if not groups or unmeasured_and_busy(fleet):
        return []
    me, now = fleet.me, fleet.now
    ends = group_ends(fleet)
    end_of = {id(g): end for g, end in zip(fleet.groups, ends, strict=True)}
    capacity = me.speed * (projected_end(fleet, ends) - max(now, me.free_at))
    groups.sort(key=lambda g: (-end_of[id(g)], -min(g.longest, capacity), g.language, g.min_tier))
    choices: list[Choice] = [Longest(g, capacity) for g in groups if capacity >= g.shortest]
    choices += [Shortest(g) for g in groups if first_to_finish(fleet, g)]
    return choices


def unmeasured_and_busy(fleet: Fleet) -> bool:
    """`me` still works on its first task, and its speed is only its benchmark's word (step 2)."""
    return not fleet.me.measured and fleet.me.free_at > fleet.now


def rivals(fleet: Fleet, group: Group) -> Iterable[Host]:
    """The other hosts that may take `group` and could beat `me` to it."""
    for c in fleet.classes:
        if group.open_to(c.reach):
            yield from (h for h in c.frontier if h.name != fleet.me.name)


def first_to_finish(fleet: Fleet, group: Group) -> bool:
    """No eligible rival would finish the group's shortest task before `me` (ties go to `me`)."""
    mine_at = finish_at(fleet.me, group.shortest, fleet.now)
    return all(mine_at <= finish_at(h, group.shortest, fleet.now) for h in rivals(fleet, group))


def frontier(hosts: Iterable[Host], now: float) -> tuple[Host, ...]:
    """The hosts no other beats on both free time and speed: only these can finish a task first."""
    best: list[Host] = []
    for h in sorted(hosts, key=lambda h: (max(now, h.free_at), -h.speed, h.name)):
        if not best or h.speed > best[-1].speed:
            best.append(h)
    return tuple(best[:FRONTIER])


def replica(fleet: Fleet, running: Sequence[Running], budget_seconds: float) -> Optional[str]:
    """The running task an idle host should copy (step 4), or None."""
    me, now = fleet.me, fleet.now
    if mine(fleet) or me.free_at > now:
        return None
    best, best_gain = None, 0.0
    for r in running:
        if r.seconds > budget_seconds or not me.reach.takes(r.language, r.min_tier, r.translate):
            continue
        left = r.finish_at - now
        gain = left - r.seconds / me.speed
        if gain > REPLICA_MIN_GAIN * left and gain > best_gain:
            best, best_gain = r.task_id, gain
    return best


def holder_finish(
    now: float,
    seconds: float,
    speed: float,
    eta: Optional[float],
    progress: Optional[float],
    heartbeat_at: Optional[float],
    paused: bool = False,
) -> float:
    """A running task's predicted finish: from its last progress report at the holder's speed, else
    the prediction made when it was granted. A holder already late is expected to take as long again;
    one its owner's rules paused (for as long as they hold) is expected to take the whole task again,
    so a replica elsewhere may overtake it."""
    if paused:
        return now + seconds / speed
    if progress and heartbeat_at:
        predicted = heartbeat_at + (1 - min(progress, 100.0) / 100) * seconds / speed
    else:
        predicted = eta if eta is not None else now
    return predicted if predicted >= now else now + (now - predicted)


def fleet_speed(known: Sequence[float]) -> float:
    """The speed assumed for a host nobody has measured: the fleet's median, else real time."""
    if not known:
        return 1.0
    ordered = sorted(known)
    return ordered[len(ordered) // 2]
