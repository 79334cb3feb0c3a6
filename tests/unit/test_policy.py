"""The scheduling policy on constructed fleets, and in a small event simulation against FIFO: one
language and a mixed fleet (languages, English-only models, model tiers, noisy speeds)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, replace

import pytest

from server.ledger import policy
from server.ledger.policy import Class, Fleet, Group, Host, Longest, Reach, Running, SchedulerKind, Shortest

NOW = 1000.0
SPEEDS = (2, 3, 5, 8, 12, 16, 24, 30)
ALL = Reach(None, 2)  # a multilingual base model
EN = Reach(frozenset({"en", "auto"}), 1)  # tiny.en
MEDIUM = Reach(None, 4)


@dataclass(frozen=True)
class Task:
    seconds: float
    language: str = "en"
    min_tier: int = 0
    priority: int = 0


def make_fleet(me: Host, others: list[Host], tasks: list[Task], now: float = NOW) -> Fleet:
    """What the ledger's snapshot hands the policy, built the slow way."""
    hosts = [me, *others]
    classes = tuple(
        Class(
            r,
            sum(h.speed for h in hosts if h.reach == r),
            sum(h.speed * max(0.0, h.free_at - now) for h in hosts if h.reach == r),
            policy.frontier([h for h in hosts if h.reach == r], now),
        )
        for r in dict.fromkeys(h.reach for h in hosts)
    )
    keys = dict.fromkeys((t.priority, t.language, t.min_tier) for t in tasks)
    groups = []
    for p, lang, tier in keys:
        mine = [t.seconds for t in tasks if (t.priority, t.language, t.min_tier) == (p, lang, tier)]
        groups.append(Group(lang, tier, p, len(mine), sum(mine), min(mine), longest=max(mine)))
    return Fleet(now, me, classes, tuple(groups))


def en(*seconds: float) -> list[Task]:
    return [Task(s) for s in seconds]


def test_near_the_end_the_long_task_goes_to_the_fast_host_and_the_slow_host_waits():
    slow, fast = Host("laptop", 2, NOW, ALL), Host("gpu", 30, NOW + 1, ALL)
    tasks = en(600, 60, 60, 60, 60)
    assert policy.choose(make_fleet(slow, [fast], tasks)) == []  # it would finish even a 60 s task late
    choice = policy.choose(make_fleet(fast, [slow], tasks))[0]
    assert isinstance(choice, Longest) and choice.max_seconds >= 600


def test_a_fleet_with_no_speed_known_sets_no_pace_and_the_host_still_gets_work():
    """A snapshot whose classes all sum to speed 0 (the host not counted yet): no division by zero."""
    me = Host("box", 5, NOW, ALL)
    fleet = make_fleet(me, [], en(60, 30))
    fleet = replace(fleet, classes=tuple(replace(c, speed=0.0) for c in fleet.classes))
    assert policy.projected_end(fleet) == NOW
    assert [type(c) for c in policy.choose(fleet)] == [Shortest]  # nothing fits by time: first to finish


def test_early_on_every_host_takes_the_longest_task():
    slow, fast = Host("laptop", 2, NOW, ALL), Host("gpu", 30, NOW, ALL)
    tasks = en(*[600.0] * 40, *[60.0] * 100)
    for me, other in ((slow, fast), (fast, slow)):
        choice = policy.choose(make_fleet(me, [other], tasks))[0]
        assert isinstance(choice, Longest) and choice.max_seconds >= 600


def test_a_slow_host_gets_short_work_once_long_work_no_longer_fits():
    slow, fast = Host("laptop", 2, NOW, ALL), Host("gpu", 30, NOW, ALL)
    choice = policy.choose(make_fleet(slow, [fast], en(600.0, 600.0, *[30.0] * 20)))[0]
    assert isinstance(choice, Longest) and 30 <= choice.max_seconds < 600


def test_when_nothing_fits_the_shortest_task_goes_to_whoever_finishes_it_first():
    me = Host("laptop", 2, NOW, ALL)
    # Over its share of the work, but the other host is busy so long that the laptop still wins.
    assert isinstance(policy.choose(make_fleet(me, [Host("old-pc", 3, NOW + 1000, ALL)], en(3000)))[0], Shortest)
    assert policy.choose(make_fleet(me, [Host("gpu", 30, NOW + 1000, ALL)], en(3000))) == []


def test_a_prefetching_host_counts_as_busy_until_its_current_task_ends():
    other = Host("twin", 10, NOW, ALL)
    busy = policy.choose(make_fleet(Host("box", 10, NOW + 100, ALL), [other], en(*[100.0] * 30)))[0]
    idle = policy.choose(make_fleet(Host("box", 10, NOW, ALL), [other], en(*[100.0] * 30)))[0]
    assert isinstance(busy, Longest) and isinstance(idle, Longest)
    assert busy.max_seconds < idle.max_seconds


def test_a_host_not_measured_yet_holds_one_task_at_a_time():
    """Its speed is its benchmark's word (x0.5-2 on a real fleet): a prefetch sized by it may be the
    long task that ends the batch late on a host slower than it said."""
    twin, tasks = Host("twin", 10, NOW, ALL), en(*[100.0] * 30)
    new = Host("new", 10, NOW + 100, ALL, measured=False)
    assert policy.choose(make_fleet(new, [twin], tasks)) == []
    assert policy.unmeasured_and_busy(make_fleet(new, [twin], tasks))
    assert policy.choose(make_fleet(replace(new, free_at=NOW), [twin], tasks))  # idle: its first task
    assert policy.choose(make_fleet(replace(new, measured=True), [twin], tasks))  # measured: it prefetches


# --- who may take what -------------------------------------------------------------------------


def test_hosts_that_cannot_take_a_task_do_not_make_its_only_taker_wait():
    """The French file goes to the slow multilingual host although idle English-only GPUs are faster."""
    slow = Host("laptop", 2, NOW, ALL)
    gpus = [Host(f"gpu{i}", 30, NOW, EN) for i in range(3)]
    choices = policy.choose(make_fleet(slow, gpus, [Task(3000, "fr"), *en(60, 60)]))
    assert choices and choices[0].group.language == "fr"
    # Were the GPUs multilingual, they would get it (far sooner): the laptop is offered a short one at most.
    multilingual = [replace(g, reach=ALL) for g in gpus]
    choices = policy.choose(make_fleet(slow, multilingual, [Task(3000, "fr"), *en(60, 60)]))
    assert choices and all(c.group.language == "en" for c in choices)


def test_a_multilingual_host_takes_what_only_it_may_take_before_what_others_could():
    me = Host("box", 5, NOW, ALL)
    gpus = [Host(f"gpu{i}", 30, NOW, EN) for i in range(3)]
    tasks = [*en(*[600.0] * 10), *[Task(600.0, "fr")] * 3]
    choices = policy.choose(make_fleet(me, gpus, tasks))
    assert choices[0].group.language == "fr"
    # An English-only host never gets a French group offered.
    assert all(c.group.language == "en" for c in policy.choose(make_fleet(gpus[0], [me, *gpus[1:]], tasks)))


def test_groups_that_end_together_are_one_pool_and_the_longest_task_that_fits_goes_first():
    """French and German are both for the multilingual hosts alone: the long French part goes out
    while there is time for it, not after every German one because "de" sorts first."""
    me = Host("box", 5, NOW, ALL)
    gpus = [Host(f"gpu{i}", 30, NOW, EN) for i in range(3)]
    tasks = [*[Task(100.0, "de")] * 10, Task(600.0, "fr"), *en(*[600.0] * 10)]
    choices = policy.choose(make_fleet(me, gpus, tasks))
    assert [(type(c), c.group.language) for c in choices][:2] == [(Longest, "fr"), (Longest, "de")]


def test_a_job_asking_for_a_higher_model_tier_goes_to_the_slow_host_that_has_it():
    medium = Host("medium-cpu", 1.5, NOW, MEDIUM)
    small_gpus = [Host(f"gpu{i}", 25, NOW, Reach(None, 3)) for i in range(4)]
    tasks = [Task(1800, "en", min_tier=4, priority=10), *en(60, 60, 60)]
    choices = policy.choose(make_fleet(medium, small_gpus, tasks))
    assert choices and choices[0].group.min_tier == 4
    # The small-model hosts are never offered it, and do not wait on it either.
    first = policy.choose(make_fleet(small_gpus[0], [medium, *small_gpus[1:]], tasks))
    assert first and all(c.group.min_tier == 0 for c in first)


def test_the_batch_end_counts_each_languages_work_over_the_speed_that_may_take_it():
    slow = Host("laptop", 2, NOW, ALL)
    gpu = Host("gpu", 30, NOW, EN)
    f = make_fleet(gpu, [slow], [Task(2000, "fr"), *en(100)])
    assert policy.projected_end(f) == pytest.approx(NOW + 2000 / 2)  # not (2100) / 32


@pytest.mark.parametrize("seed", range(40))
def test_whenever_a_host_is_told_to_wait_an_eligible_host_that_asks_would_get_work(seed):
    """The bound on waiting: a task is held back from a host only for a rival that may take it and,
    asking, would be given work; so nothing waits while no other eligible host wants it."""
    rng = random.Random(seed)
    reaches = [ALL, EN, MEDIUM, Reach(frozenset({"de", "auto"}), 2)]
    hosts = [
        Host(f"h{i}", rng.choice([1, 2, 5, 10, 30]), NOW + rng.choice([0, 0, 50, 500]), rng.choice(reaches))
        for i in range(rng.randint(2, 8))
    ]
    tasks = [
        Task(rng.choice([30, 300, 1800]), rng.choice(["en", "fr", "de", "auto"]), rng.choice([0, 0, 4]))
        for _ in range(rng.randint(1, 12))
    ]
    for me in hosts:
        f = make_fleet(me, [h for h in hosts if h is not me], tasks)
        groups = policy.mine(f)
        if not groups or policy.choose(f):
            continue
        for g in groups:
            eligible = [h for h in hosts if g.open_to(h.reach)]
            best = min(eligible, key=lambda h: policy.finish_at(h, g.shortest, NOW))
            assert best is not me
            assert policy.choose(make_fleet(best, [h for h in hosts if h is not best], tasks))


def test_an_idle_host_that_alone_may_take_a_task_always_gets_it():
    me = Host("slow", 0.5, NOW, Reach(frozenset({"fi", "auto"}), 1))
    others = [Host(f"gpu{i}", 50, NOW, EN) for i in range(3)]
    tasks = [Task(7200, "fi", min_tier=0), *en(*[600.0] * 50)]
    assert policy.choose(make_fleet(me, others, tasks))


def test_replication_fires_only_when_the_copy_would_finish_clearly_sooner():
    idle_fast = Host("gpu", 30, NOW, ALL)
    empty = make_fleet(idle_fast, [Host("laptop", 2, NOW + 300, ALL)], [])
    straggler = Running("t1", 600, NOW + 300)  # the laptop needs 300 s more; the GPU 20 s
    almost_done = Running("t2", 600, NOW + 15)  # a copy would take 20 s: no help
    assert policy.replica(empty, [straggler, almost_done], budget_seconds=10_000) == "t1"
    assert policy.replica(empty, [almost_done], budget_seconds=10_000) is None
    assert policy.replica(empty, [straggler], budget_seconds=599) is None  # over the budget
    busy = make_fleet(Host("gpu", 30, NOW + 5, ALL), [], [])
    assert policy.replica(busy, [straggler], budget_seconds=10_000) is None  # only idle hosts copy
    queued = make_fleet(idle_fast, [], en(60))
    assert policy.replica(queued, [straggler], budget_seconds=10_000) is None  # queued work first
    english_only = make_fleet(Host("gpu", 30, NOW, EN), [], [])
    french = Running("t3", 600, NOW + 300, language="fr")
    assert policy.replica(english_only, [french], budget_seconds=10_000) is None  # may not take it


def test_a_holders_finish_follows_its_progress_and_a_late_holder_is_expected_to_take_as_long_again():
    assert policy.holder_finish(NOW, 600, 2, eta=NOW + 50, progress=50, heartbeat_at=NOW - 10) == NOW + 140
    assert policy.holder_finish(NOW, 600, 2, eta=NOW + 50, progress=None, heartbeat_at=None) == NOW + 50
    assert policy.holder_finish(NOW, 600, 2, eta=NOW - 40, progress=None, heartbeat_at=None) == NOW + 40
    # Paused by its owner's rules (battery, a game): the whole task again, whatever it had done.
    assert policy.holder_finish(NOW, 600, 2, eta=NOW + 50, progress=90, heartbeat_at=NOW, paused=True) == NOW + 300


def test_the_frontier_keeps_only_hosts_that_could_finish_something_first():
    hosts = [Host("a", 10, NOW), Host("b", 5, NOW), Host("c", 30, NOW + 100), Host("d", 20, NOW + 200)]
    assert [h.name for h in policy.frontier(hosts, NOW)] == ["a", "c"]


# --- an event simulation ---------------------------------------------------------------------


def simulate(
    tasks: list[Task], hosts: list[Host], kind: SchedulerKind, noise: float = 0.0, seed: int = 0
) -> tuple[float, list]:
    """Hosts ask for work when free, or when anything changes if they were turned away. With
    `noise`, each task takes its host ×(1 ± noise) of what the policy believes."""
    rng = random.Random(seed)
    pending = list(tasks)
    if kind == SchedulerKind.FIFO:
        rng.shuffle(pending)
    free = {h.name: 0.0 for h in hosts}
    by_name = {h.name: h for h in hosts}
    events = [(0.0, h.name) for h in hosts]
    log: list[tuple[str, Task, float, float]] = []
    while events:
        now, name = heapq.heappop(events)
        me = replace(by_name[name], free_at=free[name])
        mine = [t for t in pending if me.reach.takes(t.language, t.min_tier)]
        if not mine:
            continue
        if kind == SchedulerKind.FIFO:
            task = mine[0]
        else:
            others = [replace(h, free_at=free[h.name]) for h in hosts if h.name != name]
            choices = policy.choose(make_fleet(me, others, pending, now))
            if not choices:
                later = [t for t in free.values() if t > now]
                if later:
                    heapq.heappush(events, (min(later), name))
                continue
            task = pick(pending, choices[0])
        pending.remove(task)
        free[name] = now + task.seconds / me.speed * rng.uniform(1 - noise, 1 + noise)
        log.append((name, task, now, free[name]))
        heapq.heappush(events, (free[name], name))
    assert not pending, f"{len(pending)} tasks never handed out"
    return max(free.values()), log


def pick(pending: list[Task], choice: policy.Choice) -> Task:
    g = choice.group
    group = [t for t in pending if (t.priority, t.language, t.min_tier) == (g.priority, g.language, g.min_tier)]
    if isinstance(choice, Longest):
        fits = [t for t in group if t.seconds <= choice.max_seconds]
        if fits:
            return max(fits, key=lambda t: t.seconds)
    return min(group, key=lambda t: t.seconds)


def lower_bound(tasks: list[Task], hosts: list[Host]) -> float:
    """max over every set of languages of its work / the speed of the hosts that may take any of
    them (the empty-set case aside, this includes all work / all speeds and each language alone)."""
    langs = sorted({t.language for t in tasks})
    bound = 0.0
    for mask in range(1, 2 ** len(langs)):
        chosen = {lang for i, lang in enumerate(langs) if mask >> i & 1}
        work = sum(t.seconds for t in tasks if t.language in chosen)
        speed = sum(h.speed for h in hosts if any(h.reach.takes(lang, 0) for lang in chosen))
        bound = max(bound, work / speed)
    return bound


def library(seed: int, languages: tuple[str, ...] = ("en",)) -> list[Task]:
    rng = random.Random(seed)
    # Many short files, a few long ones cut into parts of at most 600 s.
    files = [rng.uniform(60, 900) for _ in range(60)] + [rng.uniform(3600, 7200) for _ in range(4)]
    tasks = []
    for i, f in enumerate(files):
        n = int(-(-f // 600))
        tasks += [Task(f / n, languages[i % len(languages)])] * n
    return tasks


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_batch_ends_close_to_the_lower_bound_and_fifo_does_not(seed):
    tasks = library(seed)
    hosts = [Host(f"h{i}", s, 0.0, ALL) for i, s in enumerate(SPEEDS)]
    bound = lower_bound(tasks, hosts)
    makespan, log = simulate(tasks, hosts, SchedulerKind.SPEED)
    fifo, _ = simulate(tasks, hosts, SchedulerKind.FIFO)
    assert makespan <= 1.15 * bound, (makespan / bound, fifo / bound)
    assert fifo > makespan
    # The slow host never holds the last long task near the end.
    assert max(t.seconds for name, t, start, end in log if name == "h0" and end > 0.9 * makespan) < 600


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mixed_fleet_finishes_a_mixed_library_close_to_its_bound(seed):
    """A third of the library in French and German; the three fastest hosts English-only."""
    tasks = library(seed, ("en", "en", "fr", "en", "en", "de"))
    hosts = [Host(f"h{i}", s, 0.0, EN if s >= 16 else ALL) for i, s in enumerate(SPEEDS)]
    bound = lower_bound(tasks, hosts)
    makespan, _ = simulate(tasks, hosts, SchedulerKind.SPEED)
    assert makespan <= 1.15 * bound, makespan / bound


def test_noisy_speeds_still_end_close_to_the_bound():
    tasks = library(4)
    hosts = [Host(f"h{i}", s, 0.0, ALL) for i, s in enumerate(SPEEDS)]
    makespan, _ = simulate(tasks, hosts, SchedulerKind.SPEED, noise=0.2, seed=4)
    assert makespan <= 1.25 * lower_bound(tasks, hosts)


def test_a_group_to_translate_is_open_only_to_hosts_that_translate():
    group = Group("auto", 1, 20, 1, 60.0, 60.0, translate=True)
    assert not group.open_to(Reach(None, 3))  # multilingual, but its client does not say it translates
    assert not group.open_to(Reach(frozenset({"en", "auto"}), 3))  # English-only: never (reach() sees to it)
    assert group.open_to(Reach(None, 3, translate=True))
    assert not Group("auto", 4, 20, 1, 60.0, 60.0, translate=True).open_to(Reach(None, 3, translate=True))  # tier
    from server.ledger.fleet import reach

    assert not reach({"model": "ggml-tiny.en.bin", "english_only": True, "translate": True}).translate
    assert (
        not reach({"model": "ggml-base.bin"}).translate
        and reach({"model": "ggml-base.bin", "translate": True}).translate
    )
