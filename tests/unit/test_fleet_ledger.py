"""The scheduler in the ledger: speeds learned from results, speed-aware claims, tail replicas,
bad-host cool-down (tests/integration/test_ledger_postgres.py runs them on PostgreSQL too)."""

from __future__ import annotations

import pytest

from server.disk.scanner import task_id_for
from server.ledger import CooldownRule, FoundFile, Grant, LeaseLost, Made, TaskState, Wait, WaitReason
from server.ledger.policy import SchedulerKind
from tests.helpers import Clock, Kept, make_ledger

MODEL = "ggml-tiny.en.bin"


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def caps(rtf: float) -> dict:
    return {"backend": "cpu", "model": MODEL, "rtf": rtf}


def add_files(ledger, seconds: list[float]) -> list[str]:
    """Files of these lengths, probed."""
    files = [
        FoundFile(task_id_for(f"f{i:03}.mp3"), f"f{i:03}.mp3", f"f{i:03}", "en", 100, 1.0, False)
        for i in range(len(seconds))
    ]
    ledger.catalogue.sync_files(files, complete_scan=False)
    for f, s in zip(files, seconds, strict=True):
        ledger.catalogue.set_duration(f.task_id, 100, int(s * 1000))
    return [f.task_id for f in files]


def test_speeds_are_measured_by_the_server_per_model_and_backend_whatever_the_client_claims(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    add_files(ledger, [60.0, 60.0, 60.0, 60.0])
    for processing in (10.0, 20.0):
        g = ledger.leases.claim("box", capabilities=caps(9.0))
        clock.t += processing
        # The client claims 0.1 s (it wants to look fastest): the server's own clock decides.
        ledger.leases.complete(g.token, Kept(), Made(MODEL, "cpu", 600.0))
    g = ledger.leases.claim("box", capabilities={**caps(9.0), "backend": "cuda"})
    clock.t += 2.0
    ledger.leases.complete(g.token, Kept(), Made(MODEL, "cuda", 60.0))
    [host] = ledger.fleet.hosts()
    # The last capabilities (cuda) pick the speed shown; its one sample says 30x.
    assert (host.backend, host.speed, host.samples, host.bench_rtf) == ("cuda", 30.0, 1, 9.0)
    ledger.leases.claim("box", capabilities=caps(9.0))
    [host] = ledger.fleet.hosts()
    assert host.samples == 2 and host.speed == round((60 * 0.7 + 60) / (10 * 0.7 + 20), 3)


def test_a_prefetched_task_is_timed_from_the_hosts_previous_result_not_its_grant(db):
    clock = Clock()
    ledger = make_ledger(db, clock, scheduler=SchedulerKind.FIFO)  # the speed-aware one: no prefetch unmeasured
    add_files(ledger, [60.0, 60.0])
    first = ledger.leases.claim("box", capabilities=caps(5.0))
    ahead = ledger.leases.claim("box", capabilities=caps(5.0))  # prefetched while the first runs
    clock.t += 12.0
    ledger.leases.complete(first.token, Kept(), Made(MODEL, "cpu", 60.0))
    clock.t += 6.0  # 18 s after its grant, but only 6 s of work
    ledger.leases.complete(ahead.token, Kept(), Made(MODEL, "cpu", 60.0))
    [host] = ledger.fleet.hosts()
    assert host.speed == round((60 * 0.7 + 60) / (12 * 0.7 + 6), 3)


def test_a_host_not_measured_yet_gets_its_second_task_with_its_first_result(db):
    """Its prefetch waits (204, "measuring") while its speed is only its benchmark's word."""
    clock = Clock()
    ledger = make_ledger(db, clock)
    add_files(ledger, [60.0] * 5)
    first = ledger.leases.claim("box", capabilities=caps(50.0))
    assert ledger.leases.claim("box", capabilities=caps(50.0)) == Wait(WaitReason.MEASURING, 15.0)
    clock.t += 12.0
    ledger.leases.complete(first.token, Kept(), Made(MODEL, "cpu", 60.0))
    assert isinstance(ledger.leases.claim("box", capabilities=caps(50.0)), Grant)
    assert isinstance(ledger.leases.claim("box", capabilities=caps(50.0)), Grant)  # measured: it prefetches
    # A legacy client's workers ask under one name, none of them prefetching: each may get a task.
    assert isinstance(ledger.leases.claim("old"), Grant) and isinstance(ledger.leases.claim("old"), Grant)


def test_a_result_made_on_the_cpu_after_a_gpu_crash_is_measured_as_cpu(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    add_files(ledger, [60.0, 60.0])
    cuda = {**caps(40.0), "backend": "cuda"}
    g = ledger.leases.claim("box", capabilities=cuda)
    clock.t += 20.0  # the GPU build crashed; the task ran again with --no-gpu
    ledger.leases.complete(g.token, Kept(), Made(MODEL, "cpu", 60.0))
    [host] = ledger.fleet.hosts()
    assert (host.backend, host.speed) == ("cuda", None)  # nothing measured on the GPU
    ledger.leases.claim("box", capabilities=caps(40.0))  # the client stays on the CPU now, and says so
    [host] = ledger.fleet.hosts()
    assert (host.backend, host.speed, host.samples) == ("cpu", 3.0, 1)


def test_a_benchmark_is_a_first_guess_clamped_to_twice_the_fastest_measured(db):
    from server.ledger.fleet import first_guess

    assert first_guess(1e6, fastest_measured=0.0) == 1000.0
    assert first_guess(1e6, fastest_measured=12.0) == 24.0
    assert first_guess(8.0, fastest_measured=12.0) == 8.0
    assert first_guess(None, 12.0) is None and first_guess(-3, 12.0) is None and first_guess("9", 12.0) is None


def test_the_long_task_goes_to_the_fast_host_at_the_end(db):
    ledger = make_ledger(db)
    long_id, *_ = add_files(ledger, [600.0, 30.0, 30.0])
    ledger.leases.claim("gpu", capabilities=caps(30.0))  # makes the GPU part of the fleet, busy 20 s
    assert ledger.leases.claim("laptop", capabilities=caps(2.0)).task_id != long_id
    ledger.leases.claim("laptop2", capabilities=caps(2.0))
    assert ledger.leases.claim("laptop3", capabilities=caps(2.0)) is None  # 300 s; the GPU: 20 s more


def test_fifo_ignores_speeds(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO, replica_budget=1.0)
    ids = add_files(ledger, [30.0, 600.0, 30.0])
    assert ledger.leases.claim("laptop", capabilities=caps(2.0)).task_id == ids[0]  # speed-aware: ids[1]
    ledger.leases.claim("gpu", capabilities=caps(30.0))
    ledger.leases.claim("gpu2", capabilities=caps(30.0))
    assert ledger.leases.claim("gpu3", capabilities=caps(30.0)) is None  # speed-aware: a replica


def test_a_replica_goes_to_an_idle_fast_host_and_the_first_result_wins(db):
    clock = Clock()
    ledger = make_ledger(db, clock, replica_budget=1.0)
    [tid] = add_files(ledger, [600.0])
    slow = ledger.leases.claim("laptop", capabilities=caps(2.0))
    clock.t += 10
    assert ledger.leases.claim("laptop2", capabilities=caps(2.0)) is None  # a copy would be no faster
    copy = ledger.leases.claim("gpu", capabilities=caps(30.0))
    assert copy.task_id == tid and copy.replica and not slow.replica
    assert ledger.leases.claim("gpu2", capabilities=caps(30.0)) is None  # one extra copy at most
    ledger.leases.complete(copy.token, Kept(), Made(MODEL, "cpu", 600.0))
    with pytest.raises(LeaseLost):
        ledger.leases.heartbeat(slow.token, 40.0)  # the holder learns it at its next heartbeat
    assert ledger.leases.complete(slow.token, Kept()).duplicate
    hosts = {h.name: h for h in ledger.fleet.hosts()}
    assert (hosts["gpu"].replicas, hosts["gpu"].replicas_won) == (1, 1)
    assert (hosts["gpu"].tasks_done, hosts["laptop"].tasks_done) == (1, 0)  # credited: the winner alone
    assert ledger.reports.stats().counts[TaskState.DONE] == 1


def test_no_replica_without_budget_or_while_the_holder_reports_it_is_nearly_done(db):
    clock = Clock()
    ledger = make_ledger(db, clock, replica_budget=0.0)
    add_files(ledger, [600.0])
    holder = ledger.leases.claim("laptop", capabilities=caps(2.0))
    assert ledger.leases.claim("gpu", capabilities=caps(30.0)) is None  # no budget
    ledger = make_ledger(db, clock, replica_budget=1.0)
    clock.t += 270
    ledger.leases.heartbeat(holder.token, 95.0)  # 15 s left at 2x: a copy (20 s) would not help
    assert ledger.leases.claim("gpu", capabilities=caps(30.0)) is None
    ledger.leases.heartbeat(holder.token, 10.0)  # slower than its speed said: 270 s left
    assert ledger.leases.claim("gpu", capabilities=caps(30.0)).replica


def fail_then_done_elsewhere(ledger, bad: str) -> None:
    g = ledger.leases.claim(bad, capabilities=caps(5.0))
    ledger.leases.fail(g.token, "whisper-cli crashed", retryable=True)
    g2 = ledger.leases.claim("good", capabilities=caps(5.0))
    assert g2.task_id == g.task_id
    ledger.leases.complete(g2.token, Kept())


def test_a_host_that_keeps_failing_what_others_transcribe_cools_down_longer_each_time(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=5, cooldown=CooldownRule(strikes=2, seconds=100))
    add_files(ledger, [60.0] * 10)
    for _ in range(2):
        fail_then_done_elsewhere(ledger, "flaky")
    [flaky] = [h for h in ledger.fleet.hosts() if h.name == "flaky"]
    assert flaky.cooldown_until == clock.t + 100
    assert ledger.leases.claim("flaky", capabilities=caps(5.0)) is None
    clock.t += 101
    for _ in range(2):
        fail_then_done_elsewhere(ledger, "flaky")
    [flaky] = [h for h in ledger.fleet.hosts() if h.name == "flaky"]
    assert flaky.cooldown_until == clock.t + 200  # the second in a row lasts twice as long
    clock.t += 201
    fail_then_done_elsewhere(ledger, "flaky")
    g = ledger.leases.claim("flaky", capabilities=caps(5.0))
    ledger.leases.complete(g.token, Kept(), Made(MODEL, "cpu", 60.0))
    [flaky] = [h for h in ledger.fleet.hosts() if h.name == "flaky"]
    assert (flaky.strikes, flaky.tasks_done) == (0, 1)  # a result of its own forgives its strike
    fail_then_done_elsewhere(ledger, "flaky")
    [flaky] = [h for h in ledger.fleet.hosts() if h.name == "flaky"]
    assert flaky.cooldown_until is None and flaky.strikes == 1  # so one more is no cool-down yet
    assert ledger.fleet.clear("flaky") and not ledger.fleet.clear("nobody")
    [flaky] = [h for h in ledger.fleet.hosts() if h.name == "flaky"]
    assert flaky.cooldown_until is None and flaky.strikes == 0
    assert ledger.leases.claim("flaky", capabilities=caps(5.0)) is not None


def test_a_host_cooling_down_that_keeps_asking_holds_back_nobodys_work(db):
    """It asks (and gets nothing) between the snapshot's reads: it must not join the fleet as a fast
    rival that every other host would be told to wait for."""
    ledger = make_ledger(db, Clock(), cooldown=CooldownRule(strikes=1, seconds=600), snapshot_seconds=1.0)
    add_files(ledger, [3000.0])
    with ledger.db.writing() as c:
        c.connection.exec_driver_sql("INSERT INTO client (name, capabilities, first_seen, last_seen, tasks_done,"
                                     " tasks_failed, strikes, cooldowns, valid_streak, invalid_results,"
                                     " cooldown_until) VALUES ('liar', '{}', 0, 0, 0, 0, 0, 1, 0, 0, 9e9)")  # fmt: skip
    assert ledger.leases.claim("liar", capabilities=caps(50.0)) is None
    assert ledger.leases.claim("liar", capabilities=caps(50.0)) is None
    grant = ledger.leases.claim("slow", capabilities=caps(1.0))
    assert grant is not None and not isinstance(grant, Wait), grant


def test_failing_a_file_nobody_can_transcribe_is_no_strike(db):
    ledger = make_ledger(db, max_attempts=2, cooldown=CooldownRule(strikes=1, seconds=100))
    add_files(ledger, [60.0])
    for name in ("a", "b"):
        g = ledger.leases.claim(name, capabilities=caps(5.0))
        ledger.leases.fail(g.token, "cannot decode")
    assert ledger.reports.stats().counts[TaskState.FAILED] == 1
    assert all(h.strikes == 0 and h.cooldown_until is None for h in ledger.fleet.hosts())


def test_a_paused_holder_may_be_overtaken_by_a_replica(db):
    """A holder that says it is paused (its owner's rules) is predicted to need the whole task again:
    a host no faster than it, which would not copy a running task, copies a paused one."""
    clock = Clock()
    ledger = make_ledger(db, clock, replica_budget=1.0)
    add_files(ledger, [600.0])
    holder = ledger.leases.claim("laptop", capabilities=caps(2.0))
    clock.t += 200
    ledger.leases.heartbeat(holder.token, 70.0)  # 90 s left at 2x: a 2x copy (300 s) would not help
    assert ledger.leases.claim("desktop", capabilities=caps(4.0)) is None
    clock.t += 2  # the snapshot's second
    ledger.leases.heartbeat(holder.token, 70.0, paused="on battery (RUN_ON_BATTERY=false)")
    copy = ledger.leases.claim("desktop", capabilities=caps(4.0))
    assert copy is not None and copy.replica  # 150 s at 4x against 300 s more for the paused holder
