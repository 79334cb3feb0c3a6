"""Validation by replication in the ledger: a result held until a second host's agrees, a third host
deciding a disagreement, trust earned and lost, and checks only for hosts that may take them."""

from __future__ import annotations

import pytest

from server.ledger import (
    AttemptState,
    Event,
    Grant,
    Made,
    TaskState,
    ValidationMode,
    ValidationRule,
    Wait,
    WaitReason,
)
from server.ledger.validation import TIER_WAIT
from tests.helpers import Clock, add_tasks, make_ledger

SMALL = {"model": "ggml-small.bin", "backend": "cpu"}
BASE = {"model": "ggml-base.bin", "backend": "cpu"}


class Store:
    """ledger.Results in memory: what each upload says, where the ledger put it."""

    def __init__(self, text: str, shelf: dict):
        self.text, self.shelf = text, shelf

    def keep(self, task):
        self.shelf[("kept", task.id)] = self.text

    def hold(self, task, attempt_id):
        self.shelf[("held", attempt_id)] = self.text

    def agrees(self, task, attempt_id):
        return self.shelf[("held", attempt_id)] == self.text

    def promote(self, task, attempt_id):
        self.shelf[("kept", task.id)] = self.shelf[("held", attempt_id)]

    def reopen(self, task, attempt_id):
        self.shelf[("held", attempt_id)] = self.shelf[("kept", task.id)]
        return True


@pytest.fixture
def world(tmp_path):
    def make(mode=ValidationMode.ADAPTIVE, trust_after=10, chance=lambda: 0.5, tasks=1):
        clock = Clock()
        ledger = make_ledger(
            f"sqlite:///{tmp_path / 'db'}",
            clock,
            validation=ValidationRule(mode, trust_after, chance),
            scheduler="fifo",
        )
        heard = []
        ledger.leases.events.subscribe(lambda event, record: heard.append((event, record)))
        return ledger, add_tasks(ledger, tasks), clock, heard, {}

    return make


def upload(ledger, host, text, shelf, caps=SMALL):
    grant = ledger.leases.claim(host, capabilities=caps)
    assert isinstance(grant, Grant), f"{host} got {grant!r}"
    return grant, ledger.leases.complete(grant.token, Store(text, shelf), Made(caps["model"], "cpu", 60.0))


def trusted_liar(ledger):
    """A host called liar with a run of 50 confirmed results: trusted, so rarely checked."""
    with ledger.db.writing() as c:
        c.connection.exec_driver_sql("INSERT INTO client (name, capabilities, first_seen, last_seen, tasks_done,"
                                     " tasks_failed, strikes, cooldowns, valid_streak, invalid_results)"
                                     " VALUES ('liar', '{}', 0, 0, 0, 0, 0, 0, 50, 0)")  # fmt: skip


def host(ledger, name):
    return next(h for h in ledger.fleet.hosts() if h.name == name)


def test_an_untrusted_result_is_held_until_another_host_agrees(world):
    ledger, (tid,), _, heard, shelf = world()
    _, done = upload(ledger, "a", "the same words", shelf)
    assert done.held and ledger.reports.task(tid).state == TaskState.CHECKING and ("kept", tid) not in shelf
    assert ledger.leases.claim("a", capabilities=SMALL) is None  # a host never checks itself
    check, done = upload(ledger, "b", "the same words", shelf)
    assert check.task_id == tid and not done.held and done.verdict.kept is not None
    assert ledger.reports.task(tid).state == TaskState.DONE and shelf[("kept", tid)] == "the same words"
    assert (host(ledger, "a").valid_streak, host(ledger, "b").valid_streak) == (1, 1)
    assert (host(ledger, "a").tasks_done, host(ledger, "b").tasks_done) == (1, 1)
    events = [e for e, _ in heard]
    assert events.index(Event.RESULT_PENDING) < events.index(Event.RESULT_VALID) < events.index(Event.COMPLETED)
    assert ledger.reports.stats().check_seconds == 0.0  # unprobed task: no known length to count


def test_a_third_host_decides_and_the_outvoted_host_loses_its_run(world):
    ledger, (tid,), _, heard, shelf = world()
    with ledger.db.writing() as c:
        c.connection.exec_driver_sql("INSERT INTO client (name, capabilities, first_seen, last_seen, tasks_done,"
                                     " tasks_failed, strikes, cooldowns, valid_streak, invalid_results)"
                                     " VALUES ('liar', '{}', 0, 0, 0, 0, 0, 0, 5, 0)")  # fmt: skip
    upload(ledger, "liar", "plausible garbage", shelf)
    _, second = upload(ledger, "b", "the true words", shelf)
    assert second.held and ledger.reports.task(tid).state == TaskState.CHECKING  # one against one: wait
    _, third = upload(ledger, "c", "the true words", shelf)
    assert third.verdict.outvoted == ("liar",) and shelf[("kept", tid)] == "the true words"
    liar = host(ledger, "liar")
    assert (liar.valid_streak, liar.invalid_results, liar.strikes, liar.trusted) == (0, 1, 1, False)
    assert (host(ledger, "b").valid_streak, host(ledger, "c").valid_streak) == (1, 1)
    assert [r["client"] for e, r in heard if e == Event.RESULT_INVALID] == ["liar"]


def test_three_different_transcripts_fail_the_task(world):
    ledger, (tid,), _, _, shelf = world()
    for name in ("a", "b", "c"):
        _, done = upload(ledger, name, f"words of {name}", shelf)
    assert done.verdict.disagreed and ("kept", tid) not in shelf
    task = ledger.reports.task(tid)
    assert task.state == TaskState.FAILED and "different transcripts" in task.last_error


def test_trust_is_earned_then_one_result_in_n_is_checked(world):
    ledger, _, _, _, shelf = world(trust_after=2, chance=lambda: 0.4, tasks=5)
    for _ in range(2):  # two confirmed results: trusted
        upload(ledger, "a", "words", shelf)
        upload(ledger, "b", "words", shelf)
    assert host(ledger, "a").trusted and host(ledger, "a").valid_streak == 2
    _, unchecked = upload(ledger, "a", "words", shelf)  # 0.4 < 1/2: checked
    assert unchecked.held
    upload(ledger, "b", "words", shelf)
    _, trusted = upload(ledger, "a", "words", shelf)  # streak 3: 0.4 >= 1/3, taken as it is
    assert not trusted.held and ledger.reports.task(trusted.task.id).state == TaskState.DONE


@pytest.mark.parametrize(
    "mode,asked,held",
    [(ValidationMode.OFF, False, False), (ValidationMode.OFF, True, True), (ValidationMode.ALWAYS, False, True)],
)
def test_modes_and_a_job_that_asks(world, mode, asked, held):
    ledger, (tid,), _, _, shelf = world(mode=mode, trust_after=1, chance=lambda: 0.99)
    with ledger.db.writing() as c:
        c.connection.exec_driver_sql(f"UPDATE task SET validate_all = {int(asked)}")
        c.connection.exec_driver_sql("INSERT INTO client (name, capabilities, first_seen, last_seen, tasks_done,"
                                     " tasks_failed, strikes, cooldowns, valid_streak, invalid_results)"
                                     " VALUES ('a', '{}', 0, 0, 0, 0, 0, 0, 50, 0)")  # fmt: skip
    _, done = upload(ledger, "a", "words", shelf)
    assert done.held == held and ledger.reports.task(tid).validate_all == asked


def test_a_check_waits_for_the_same_model_tier_then_any_host(world):
    ledger, (tid,), clock, _, shelf = world()
    upload(ledger, "a", "words", shelf, caps=SMALL)
    # Another tier: not yet, but soon (an until-idle client stays for it).
    assert ledger.leases.claim("b", capabilities=BASE) == Wait(WaitReason.CHECKING, 5.0)
    clock.t += TIER_WAIT + 1
    check, done = upload(ledger, "b", "words", shelf, caps=BASE)
    assert check.task_id == tid and not done.held


def test_a_repeated_upload_of_a_held_result_changes_nothing(world):
    ledger, (tid,), _, _, shelf = world()
    grant, done = upload(ledger, "a", "words", shelf)
    again = ledger.leases.complete(grant.token, Store("other words", shelf), None)
    assert done.held and again.duplicate and shelf[("held", _attempt_id(ledger, tid, "a"))] == "words"


def _attempt_id(ledger, tid, client):
    with ledger.db.reading() as c:
        rows = c.connection.exec_driver_sql(
            f"SELECT id, state FROM attempt WHERE task_id='{tid}' AND client='{client}'"
        )
        (aid, state), *_ = rows.all()
    assert state == AttemptState.PENDING
    return aid


def test_parts_are_checked_as_parts_before_the_stitch(world):
    from tests.unit.test_parts_ledger import split_file

    ledger, _, _, heard, shelf = world(tasks=0)
    fid, parts = split_file(ledger)
    done = [upload(ledger, name, "part words", shelf)[1] for name in ("a", "b", "c", "a", "b", "c")]
    # Each part: a result held, then a check (checks go first) that agrees; the file is ready last.
    assert [d.held for d in done] == [True, False] * 3
    assert [d.file_ready for d in done] == [None] * 5 + [fid]
    assert [r["task"] for e, r in heard if e == Event.RESULT_PENDING] == parts
    assert ledger.reports.stats().check_seconds == 1800.0  # the checks transcribed the file once more


def test_an_outvoted_hosts_unchecked_results_are_checked_again(world):
    ledger, _, _, heard, shelf = world(tasks=3, chance=lambda: 0.99)  # trusted: 0.99 >= 1/n, no check
    trusted_liar(ledger)
    first, done = upload(ledger, "liar", "garbage", shelf)
    assert not done.held and shelf[("kept", first.task_id)] == "garbage"  # trusted: taken unchecked
    upload(ledger, "b", "true words", shelf)  # b's own result (untrusted): held
    _, check = upload(ledger, "liar", "garbage", shelf)  # the liar checks it: they disagree
    assert check.held
    _, decided = upload(ledger, "c", "true words", shelf)  # c decides: the liar is outvoted
    assert decided.verdict.outvoted == ("liar",) and decided.verdict.rechecked == [first.task_id]
    assert ledger.reports.task(first.task_id).state == TaskState.CHECKING  # its unchecked result: again
    assert ("result.pending", first.task_id) in [(str(e), r["task"]) for e, r in heard]
    upload(ledger, "b", "true words", shelf)  # disagrees with the liar's held result
    upload(ledger, "c", "true words", shelf)  # and c agrees with b: the file's result is replaced
    assert ledger.reports.task(first.task_id).state == TaskState.DONE and shelf[("kept", first.task_id)] == "true words"
    assert next(h for h in ledger.fleet.hosts() if h.name == "liar").invalid_results == 2


def test_a_host_with_nothing_to_do_waits_while_another_works_it_may_have_to_check(world):
    ledger, (x, y), _, _, shelf = world(tasks=2)
    working = ledger.leases.claim("b", capabilities=SMALL)  # b works on one task
    _, held = upload(ledger, "a", "words", shelf)  # a's result on the other is held for b to check
    assert held.held and {working.task_id, held.task.id} == {x, y}
    # a has nothing to do now, but b's result may need a's check: a is told to wait, not "nothing".
    assert ledger.leases.claim("a", capabilities=SMALL) == Wait(WaitReason.CHECKING, 5.0)
    assert ledger.leases.complete(working.token, Store("words", shelf), Made("ggml-small.bin", "cpu", 60.0)).held
    check = ledger.leases.claim("a", capabilities=SMALL)
    assert isinstance(check, Grant) and check.task_id == working.task_id


def test_an_outvoted_hosts_unchecked_part_is_checked_again_and_its_file_stitched_anew(world):
    from tests.unit.test_parts_ledger import PLAN, split_file

    ledger, _, _, _, shelf = world(tasks=0, chance=lambda: 0.99)  # trusted: 0.99 >= 1/n, no check
    trusted_liar(ledger)
    fid, parts = split_file(ledger, plan=PLAN[:1])  # one part: the liar's, taken unchecked, the file stitched
    first, done = upload(ledger, "liar", "garbage", shelf)
    assert first.task_id == parts[0] and not done.held and done.file_ready == fid
    assert ledger.parts.mark_stitched(fid, 590.0) and ledger.reports.task(fid).state == TaskState.DONE
    add_tasks(ledger, 1)
    upload(ledger, "b", "true words", shelf)  # another task: b's result held,
    upload(ledger, "liar", "garbage", shelf)  # the liar's check disagrees,
    _, decided = upload(ledger, "c", "true words", shelf)  # c outvotes the liar:
    assert decided.verdict.rechecked == [parts[0]]  # its part of the stitched file is checked again
    assert (ledger.reports.task(parts[0]).state, ledger.reports.task(fid).state) == (
        TaskState.CHECKING,
        TaskState.SPLIT,
    )
    upload(ledger, "b", "true words", shelf)
    _, settled = upload(ledger, "c", "true words", shelf)  # b and c agree: the part's result is replaced
    assert shelf[("kept", parts[0])] == "true words" and settled.file_ready == fid  # and the file stitched anew


def test_a_held_result_that_no_host_seen_may_check_is_reported_until_one_comes(world):
    """A fleet's only multilingual host: its French result is held for a check its English-only peer
    may not make. Reported, unlike a result that another host seen may check."""
    ledger, (fr, en), clock, _, shelf = world(tasks=2)
    with ledger.db.writing() as c:
        c.connection.exec_driver_sql(f"UPDATE task SET language = 'fr' WHERE id = '{fr}'")
        c.connection.exec_driver_sql(f"UPDATE task SET language = 'en' WHERE id = '{en}'")
    english_only = {"model": "ggml-small.en.bin", "backend": "cpu", "english_only": True}
    assert upload(ledger, "multi", "mots", shelf)[0].task_id == fr
    assert upload(ledger, "en-only", "words", shelf, caps=english_only)[0].task_id == en
    assert [s.task_id for s in ledger.reports.stalled_checks()] == [fr]  # multi may check en, not its own fr
    clock.t += 3601  # nobody seen for an hour: nobody may check either
    assert [s.task_id for s in ledger.reports.stalled_checks()] == [fr, en]
    check = ledger.leases.claim("multi-2", capabilities=SMALL)
    assert isinstance(check, Grant) and ledger.reports.stalled_checks() == []  # one checked now, both checkable


def test_the_operator_hears_once_of_a_held_result_no_host_may_check(world, tmp_path):
    from server.ops.alerts import STALLED_AFTER, Alerts
    from server.ops.notify import Notifier, Targets
    from tests.receiver import Receiver

    ledger, _, clock, _, shelf = world()
    with Receiver() as hook:
        notifier = Notifier(tmp_path / "out", Targets(webhook_url=hook.url), clock=clock)
        alerts = Alerts(ledger, notifier, notifier, clock=clock)
        upload(ledger, "a", "words", shelf)  # held; its only host may not check itself
        alerts.watch_checks()
        assert notifier.pending() == 0  # not yet: in a new batch, hosts join in their own time
        clock.t += STALLED_AFTER
        for _ in range(3):
            alerts.watch_checks()
        assert notifier.deliver_due() == 1
        body = hook.received[0].json()
        told = (body["event"], body["results"], body["paths"], body["languages"])
        assert told == ("checks.stalled", 1, ["f00000.mp3"], ["auto"])
        upload(ledger, "b", "words", shelf)  # a second host came and checked it
        alerts.watch_checks()
        assert notifier.pending() == 0 and not ledger.reports.stalled_checks()
