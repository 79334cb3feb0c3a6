"""Spot checks in the ledger: a check transcribes one range of the held result's task (CHECK_SECONDS at
a random place, the same for its third host), is booked and counted as that range, and two checks
that outvote the held result send the task back to be transcribed whole."""

from __future__ import annotations

import pytest

from server.ledger import Event, Grant, Made, TaskState, ValidationMode, ValidationRule, Wait, WaitReason
from tests.helpers import Clock, add_tasks, make_ledger
from tests.unit.test_validation import SMALL, Store, host, trusted_liar

LENGTH = 600.0  # seconds: each task's probed length
# chance() is 0.5: the range starts halfway into the 540 s where a 60 s range fits.
RANGE = (270.0, 330.0)


@pytest.fixture
def spot_world(tmp_path):
    def make(tasks=1, seconds=LENGTH, check_seconds=60.0, clock=None):
        clock = clock or Clock()
        rule = ValidationRule(ValidationMode.ADAPTIVE, 10, lambda: 0.5, check_seconds=check_seconds)
        ledger = make_ledger(f"sqlite:///{tmp_path / 'db'}", clock, validation=rule, scheduler="fifo")
        heard = []
        ledger.leases.events.subscribe(lambda event, record: heard.append((event, record)))
        ids = add_tasks(ledger, tasks)
        with ledger.db.writing() as c:
            c.connection.exec_driver_sql(f"UPDATE task SET duration_ms = {round(seconds * 1000)}")
        return ledger, ids, clock, heard, {}

    return make


def send(ledger, host_name, text, shelf, spot=None, clock=None, seconds=0.0):
    """`host_name` claims, works `seconds` (on `clock`) and uploads `text`; a check says it transcribed
    `spot` alone when given (as the client does for a lease with a range)."""
    grant = ledger.leases.claim(host_name, capabilities=SMALL)
    assert isinstance(grant, Grant), f"{host_name} got {grant!r}"
    if clock:
        clock.t += seconds
    made = Made(SMALL["model"], "cpu", 60.0, spot)
    return grant, ledger.leases.complete(grant.token, Store(text, shelf), made)


def test_a_check_transcribes_one_range_and_is_counted_and_learned_as_that_range(spot_world):
    clock = Clock()
    ledger, (tid,), _, heard, shelf = spot_world(clock=clock)
    first, held = send(ledger, "a", "words", shelf)
    assert (first.check_start_ms, first.check_end_ms) == (None, None)  # a task's own lease: the whole task
    assert held.held and ledger.reports.task(tid).spot == RANGE
    check, done = send(ledger, "b", "words", shelf, spot=RANGE, clock=clock, seconds=6.0)
    assert (check.check_start_ms, check.check_end_ms) == (270_000, 330_000)
    assert done.verdict.kept is not None and done.verdict.confirmed == ("a", "b")
    task = ledger.reports.task(tid)
    assert task.state == TaskState.DONE and shelf[("kept", tid)] == "words" and task.spot is None
    assert task.audio_seconds == LENGTH  # the task's length, not its check's
    assert ledger.reports.stats().check_seconds == pytest.approx(60.0)  # not 600
    assert host(ledger, "b").speed == pytest.approx(10.0)  # 60 s of audio in 6 s
    assert (host(ledger, "a").valid_streak, host(ledger, "b").valid_streak) == (1, 1)
    assert [e for e, _ in heard].count(Event.COMPLETED) == 1


def test_a_check_that_transcribed_the_whole_task_is_counted_whole(spot_world):
    """An older client ignores the range: its result is compared in the range all the same, and
    counted as what it transcribed."""
    ledger, (tid,), _, _, shelf = spot_world()
    send(ledger, "a", "words", shelf)
    _, done = send(ledger, "b", "words", shelf)  # no spot: it transcribed everything
    assert ledger.reports.task(tid).state == TaskState.DONE and done.verdict.kept is not None
    assert ledger.reports.stats().check_seconds == pytest.approx(LENGTH)


def test_a_claimed_range_other_than_the_tasks_is_not_a_spot_check(spot_world):
    ledger, (tid,), _, _, shelf = spot_world()
    send(ledger, "a", "words", shelf)
    send(ledger, "b", "words", shelf, spot=(0.0, 60.0))
    assert ledger.reports.task(tid).state == TaskState.DONE  # the Results compared it as a whole task's
    assert ledger.reports.stats().check_seconds == pytest.approx(LENGTH)


def test_a_short_task_is_checked_whole(spot_world):
    ledger, (tid,), _, _, shelf = spot_world(seconds=80.0)  # under 1.5 x 60 s
    send(ledger, "a", "words", shelf)
    check, _ = send(ledger, "b", "words", shelf)
    assert check.check_start_ms is None and ledger.reports.task(tid).state == TaskState.DONE


def test_two_checks_that_outvote_the_held_result_send_the_task_back_whole(spot_world):
    ledger, (tid,), _, heard, shelf = spot_world()
    send(ledger, "liar", "garbage", shelf)
    check, disagree = send(ledger, "b", "truth", shelf, spot=RANGE)
    assert disagree.held and ledger.reports.task(tid).spot == RANGE  # one against one: a third decides
    # b has nothing to do, but its check's vote may send the task back: it waits (also --until-idle).
    assert ledger.leases.claim("b", capabilities=SMALL) == Wait(WaitReason.CHECKING, 5.0)
    third, decided = send(ledger, "c", "truth", shelf, spot=RANGE)
    assert (third.check_start_ms, third.check_end_ms) == (check.check_start_ms, check.check_end_ms)
    v = decided.verdict
    assert v.redo and v.outvoted == ("liar",) and set(v.confirmed) == {"b", "c"} and v.settled
    task = ledger.reports.task(tid)
    assert task.state == TaskState.QUEUED and task.spot is None and ("kept", tid) not in shelf
    liar = host(ledger, "liar")
    assert (liar.valid_streak, liar.invalid_results, liar.strikes) == (0, 1, 1)
    assert (host(ledger, "b").valid_streak, host(ledger, "c").valid_streak) == (1, 1)
    assert Event.COMPLETED not in [e for e, _ in heard]
    # Transcribed whole again (by a host that checked it before: its check is no say in the new vote),
    # held, and checked by another host that checked it before.
    again, held = send(ledger, "b", "truth", shelf)
    assert again.task_id == tid and again.check_start_ms is None and held.held
    recheck, done = send(ledger, "c", "truth", shelf, spot=ledger.reports.task(tid).spot)
    assert recheck.task_id == tid and recheck.check_start_ms is not None and done.verdict.kept is not None
    assert ledger.reports.task(tid).state == TaskState.DONE and shelf[("kept", tid)] == "truth"
    assert ledger.reports.stats().check_seconds == pytest.approx(3 * 60.0)


def test_a_whole_check_that_agrees_with_a_held_range_becomes_the_tasks_result(spot_world):
    ledger, (tid,), _, _, shelf = spot_world()
    send(ledger, "liar", "garbage", shelf)
    send(ledger, "b", "truth", shelf, spot=RANGE)
    _, done = send(ledger, "c", "truth", shelf)  # an older client: the whole task
    assert not done.verdict.redo and done.verdict.outvoted == ("liar",)
    assert ledger.reports.task(tid).state == TaskState.DONE and shelf[("kept", tid)] == "truth"


def test_an_outvoted_hosts_unchecked_result_is_spot_checked_again(spot_world):
    ledger, _, _, _, shelf = spot_world(tasks=2)
    trusted_liar(ledger)
    first, kept = send(ledger, "liar", "garbage", shelf)  # trusted: 0.5 >= 1/50, taken as it is
    assert not kept.held and ledger.reports.task(first.task_id).state == TaskState.DONE
    with ledger.db.writing() as c:  # its run ends; its next result is checked
        c.connection.exec_driver_sql("UPDATE client SET valid_streak = 0 WHERE name = 'liar'")
    send(ledger, "liar", "garbage", shelf)
    send(ledger, "b", "truth", shelf, spot=RANGE)
    _, decided = send(ledger, "c", "truth", shelf, spot=RANGE)
    assert decided.verdict.rechecked == [first.task_id]
    assert ledger.reports.task(first.task_id).spot == RANGE  # checked again, as a range


def test_a_liar_outvoted_by_spot_checks_three_times_cools_down(spot_world):
    ledger, tids, _, heard, shelf = spot_world(tasks=3)
    for _ in tids:
        send(ledger, "liar", "garbage", shelf)
        send(ledger, "b", "truth", shelf, spot=RANGE)
        _, decided = send(ledger, "c", "truth", shelf, spot=RANGE)
        assert decided.verdict.redo
    assert [r["client"] for e, r in heard if e == Event.COOLDOWN] == ["liar"]
    assert ledger.leases.claim("liar", capabilities=SMALL) is None  # cooling down: no work


def test_a_running_spot_check_is_predicted_from_its_range_not_its_task(spot_world):
    """Halfway through a 60 s range of a 600 s task, its checker is predicted free in 30 s of audio at
    its speed (1x here: nobody is measured), not 300 s."""
    clock = Clock()
    ledger, _, _, _, shelf = spot_world(clock=clock)
    send(ledger, "a", "words", shelf)
    check = ledger.leases.claim("b", capabilities=SMALL)
    assert check.spot == RANGE
    ledger.leases.heartbeat(check.token, progress=50.0)
    ledger.leases.snapshots.refresh()
    assert ledger.leases.snapshots.view("b", SMALL, None).fleet.me.free_at == pytest.approx(clock.t + 30.0)
