"""The scheduling policy on constructed fleets, and in a small event simulation against FIFO."""

from __future__ import annotations

import heapq
import random

import pytest

from server import scheduler
from server.scheduler import Backlog, Fleet, Host, Longest, Running, SchedulerKind, Shortest

NOW = 1000.0
SPEEDS = (2, 3, 5, 8, 12, 16, 24, 30)


def fleet(me: Host, others: list[Host], tasks: list[float]) -> Fleet:
    return Fleet(NOW, me, tuple(others), Backlog(len(tasks), sum(tasks), min(tasks, default=0)))


def test_near_the_end_the_long_task_goes_to_the_fast_host_and_the_slow_host_waits():
    slow, fast = Host("laptop", 2, NOW), Host("gpu", 30, NOW + 1)
    tasks = [600, 60, 60, 60, 60]
    assert scheduler.choose(fleet(slow, [fast], tasks)) is None  # it would finish even a 60 s task late
    choice = scheduler.choose(fleet(fast, [slow], tasks))
    assert isinstance(choice, Longest) and choice.max_seconds >= 600


def test_early_on_every_host_takes_the_longest_task():
    slow, fast = Host("laptop", 2, NOW), Host("gpu", 30, NOW)
    tasks = [600.0] * 40 + [60.0] * 100
    for me, other in ((slow, fast), (fast, slow)):
        choice = scheduler.choose(fleet(me, [other], tasks))
        assert isinstance(choice, Longest) and choice.max_seconds >= 600


def test_a_slow_host_gets_short_work_once_long_work_no_longer_fits():
    slow, fast = Host("laptop", 2, NOW), Host("gpu", 30, NOW)
    choice = scheduler.choose(fleet(slow, [fast], [600.0] * 2 + [30.0] * 20))
    assert isinstance(choice, Longest) and 30 <= choice.max_seconds < 600


def test_when_nothing_fits_the_shortest_task_goes_to_whoever_finishes_it_first():
    me = Host("laptop", 2, NOW)
    # Over its share of the work, but the other host is busy so long that the laptop still wins.
    assert isinstance(scheduler.choose(fleet(me, [Host("old-pc", 3, NOW + 1000)], [3000.0])), Shortest)
    assert scheduler.choose(fleet(me, [Host("gpu", 30, NOW + 1000)], [3000.0])) is None


def test_a_prefetching_host_counts_as_busy_until_its_current_task_ends():
    me = Host("box", 10, NOW + 100)
    other = Host("twin", 10, NOW)
    capacity_busy = scheduler.choose(fleet(me, [other], [100.0] * 30))
    capacity_idle = scheduler.choose(fleet(Host("box", 10, NOW), [other], [100.0] * 30))
    assert isinstance(capacity_busy, Longest) and isinstance(capacity_idle, Longest)
    assert capacity_busy.max_seconds < capacity_idle.max_seconds


def test_replication_fires_only_when_the_copy_would_finish_clearly_sooner():
    idle_fast = Host("gpu", 30, NOW)
    empty = fleet(idle_fast, [Host("laptop", 2, NOW + 300)], [])
    straggler = Running("t1", 600, NOW + 300)  # the laptop needs 300 s more; the GPU 20 s
    almost_done = Running("t2", 600, NOW + 15)  # a copy would take 20 s: no help
    assert scheduler.replica(empty, [straggler, almost_done], budget_seconds=10_000) == "t1"
    assert scheduler.replica(empty, [almost_done], budget_seconds=10_000) is None
    assert scheduler.replica(empty, [straggler], budget_seconds=599) is None  # over the budget
    busy = fleet(Host("gpu", 30, NOW + 5), [], [])
    assert scheduler.replica(busy, [straggler], budget_seconds=10_000) is None  # only idle hosts copy
    queued = fleet(idle_fast, [], [60.0])
    assert scheduler.replica(queued, [straggler], budget_seconds=10_000) is None  # queued work first


def test_a_holders_finish_follows_its_progress_and_a_late_holder_is_expected_to_take_as_long_again():
    assert scheduler.holder_finish(NOW, 600, 2, eta=NOW + 50, progress=50, heartbeat_at=NOW - 10) == NOW + 140
    assert scheduler.holder_finish(NOW, 600, 2, eta=NOW + 50, progress=None, heartbeat_at=None) == NOW + 50
    assert scheduler.holder_finish(NOW, 600, 2, eta=NOW - 40, progress=None, heartbeat_at=None) == NOW + 40


def simulate(tasks: list[float], speeds: tuple[float, ...], kind: SchedulerKind) -> tuple[float, list]:
    """Hosts ask for work when free (or when anything changes, if they were turned away)."""
    pending = sorted(tasks)  # FIFO takes them in this (arbitrary) order
    if kind == SchedulerKind.FIFO:
        random.Random(7).shuffle(pending)
    free = {f"h{i}": 0.0 for i in range(len(speeds))}
    speed = {f"h{i}": s for i, s in enumerate(speeds)}
    events = [(0.0, name) for name in free]
    log, now = [], 0.0
    while events:
        now, name = heapq.heappop(events)
        if not pending:
            continue
        if kind == SchedulerKind.FIFO:  # the ledger's FIFO: the next task to whoever asks
            d = pending[0]
        else:
            me = Host(name, speed[name], free[name])
            others = tuple(Host(n, speed[n], free[n]) for n in free if n != name)
            choice = scheduler.choose(Fleet(now, me, others, Backlog(len(pending), sum(pending), min(pending))))
            if choice is None:
                later = [t for t in free.values() if t > now]
                if later:
                    heapq.heappush(events, (min(later), name))
                continue
            d = max(t for t in pending if t <= choice.max_seconds) if isinstance(choice, Longest) else min(pending)
        pending.remove(d)
        free[name] = now + d / speed[name]
        log.append((name, d, now, free[name]))
        heapq.heappush(events, (free[name], name))
    return max(free.values()), log


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_batch_ends_close_to_the_lower_bound_and_fifo_does_not(seed):
    rng = random.Random(seed)
    # Many short files, a few long ones cut into parts of at most 600 s.
    files = [rng.uniform(60, 900) for _ in range(60)] + [rng.uniform(3600, 7200) for _ in range(4)]
    tasks = [p for f in files for p in ([f] if f <= 600 else [f / -(-f // 600)] * int(-(-f // 600)))]
    bound = sum(tasks) / sum(SPEEDS)
    makespan, log = simulate(tasks, SPEEDS, SchedulerKind.SPEED)
    fifo, _ = simulate(tasks, SPEEDS, SchedulerKind.FIFO)
    assert makespan <= 1.15 * bound, (makespan / bound, fifo / bound)
    assert fifo > makespan
    # The slow host never holds the last long task: whatever it takes, it finishes before the end.
    slowest = "h0"
    assert all(end <= makespan for name, d, start, end in log if name == slowest)
    assert max(d for name, d, start, end in log if name == slowest and end > 0.9 * makespan) < 600
