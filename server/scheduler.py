"""Which task a host gets: the scheduling policy, in one place, free of SQL and HTTP.

The goal is the batch's makespan. Its physical lower bound is the work left divided by the fleet's
summed speed; with hosts 10x apart, handing out tasks in path order misses it by 2-6x, because a
slow host that takes a long task near the end makes everyone wait for it.

The policy (`SCHEDULER=speed`, the default):

1. Project when the batch would end if the work were perfectly balanced: every host works until
   the same moment T, so T = now + (queued seconds + work the hosts already hold) / (sum of speeds).
2. A host's capacity is what it can transcribe between the moment it is free (a prefetching client
   is still busy with its current task) and T. It gets the longest queued task that fits. Early on
   everything fits, so long work goes out first (LPT); near the end, slow hosts can only fit short
   tasks, and fast hosts get the long ones.
3. When nothing fits, the host gets the shortest task only if it would finish it before any other
   host could (each other host's own free time plus the task at its speed). Otherwise it waits:
   an idle slow host costs nothing, a slow host holding the last long task costs the batch.
4. Tail replication: when nothing is queued, an idle host takes a second copy of a running task
   if it would finish at least a fifth sooner than the holder is predicted to (heartbeat progress,
   or the prediction made at grant). At most one extra copy per task, within REPLICA_BUDGET.
   The first result wins; the other holder learns it from its next heartbeat (409).

Speeds are audio seconds per second, learned from results (fleet.py); a host not measured yet
counts at its benchmark (`rtf`), else at the fleet's median. Files not probed yet count as 0 s,
so they go out last among longest-first picks, first among shortest-first ones.

`SCHEDULER=fifo` hands out the next task in path order to whoever asks, for comparison (the ledger
does that without asking this module: ledger/assign.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Union

# A replica must beat its holder by this share of the holder's remaining time, or it is waste.
REPLICA_MIN_GAIN = 0.2


class SchedulerKind(str, Enum):
    SPEED = "speed"
    FIFO = "fifo"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Host:
    name: str
    speed: float  # audio seconds per second
    free_at: float  # when the work it already holds is predicted done (<= now: idle)


@dataclass(frozen=True)
class Backlog:
    """The queued tasks this host may take (its languages; probed ones while splitting is on)."""

    count: int
    seconds: float
    shortest: float


@dataclass(frozen=True)
class Running:
    """A task in progress with one holder, which a replica could overtake."""

    task_id: str
    seconds: float
    finish_at: float  # its holder's predicted finish


@dataclass(frozen=True)
class Fleet:
    now: float
    me: Host
    others: tuple[Host, ...]
    backlog: Backlog


@dataclass(frozen=True)
class Longest:
    """The longest queued task of at most `max_seconds`."""

    max_seconds: float


@dataclass(frozen=True)
class Shortest:
    """The shortest queued task."""


Choice = Union[Longest, Shortest]


def projected_end(fleet: Fleet) -> float:
    """When the batch ends if every host works until the same moment (step 1)."""
    hosts = (fleet.me, *fleet.others)
    held = sum(h.speed * max(0.0, h.free_at - fleet.now) for h in hosts)
    return fleet.now + (fleet.backlog.seconds + held) / sum(h.speed for h in hosts)


def finish_at(host: Host, seconds: float, now: float) -> float:
    return max(now, host.free_at) + seconds / host.speed


def choose(fleet: Fleet) -> Optional[Choice]:
    """What `fleet.me` should get now; None: nothing, for now (steps 2 and 3)."""
    if fleet.backlog.count == 0:
        return None
    me, now = fleet.me, fleet.now
    capacity = me.speed * (projected_end(fleet) - max(now, me.free_at))
    if capacity >= fleet.backlog.shortest:
        return Longest(capacity)
    shortest = fleet.backlog.shortest
    mine = finish_at(me, shortest, now)
    if all(mine <= finish_at(other, shortest, now) for other in fleet.others):
        return Shortest()
    return None


def replica(fleet: Fleet, running: Sequence[Running], budget_seconds: float) -> Optional[str]:
    """The running task an idle host should copy (step 4), or None."""
    me, now = fleet.me, fleet.now
    if fleet.backlog.count or me.free_at > now:
        return None
    best, best_gain = None, 0.0
    for r in running:
        if r.seconds > budget_seconds:
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
) -> float:
    """A running task's predicted finish: from its last progress report at the holder's speed, else
    the prediction made when it was granted. A holder already late is expected to take as long again."""
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
