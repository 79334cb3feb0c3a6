"""The lease lifecycle, against the ledger and a real SQLite file (tests/integration/test_ledger_postgres.py
runs the same tests on PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from server.disk.scanner import task_id_for
from server.ledger import FoundFile, LeaseLost, NotFound, TaskState
from tests.helpers import Clock, Kept, add_tasks, make_ledger


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def test_concurrent_claims_never_share_a_task(db):
    ledger = make_ledger(db)
    ids = add_tasks(ledger, 300)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str):
        while (g := ledger.leases.claim(name)) is not None:
            with lock:
                claimed.append(g.task_id)

    threads = [threading.Thread(target=worker, args=(f"c{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    assert ledger.reports.stats().counts[TaskState.LEASED] == 300


def test_expired_lease_is_reissued_and_late_result_accepted(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    [tid] = add_tasks(ledger, 1)
    first = ledger.leases.claim("slow")
    assert ledger.leases.claim("other") is None  # held by a live lease
    clock.t += 61
    second = ledger.leases.claim("fast")  # claim reclaims the expired lease by itself
    assert second.task_id == tid and second.token != first.token and second.attempt == 2
    with pytest.raises(LeaseLost):
        ledger.leases.heartbeat(first.token)
    late = ledger.leases.complete(first.token, Kept())  # BOINC-style: accepted, task not done yet
    assert late.late and not late.duplicate and late.task.state == TaskState.DONE
    with pytest.raises(LeaseLost):  # the current holder is told to stop
        ledger.leases.heartbeat(second.token)
    again = ledger.leases.complete(second.token, Kept())
    assert again.duplicate and again.task.state == TaskState.DONE


def test_heartbeat_extends_lease(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    add_tasks(ledger, 1)
    g = ledger.leases.claim("a")
    for _ in range(5):
        clock.t += 50
        assert ledger.leases.heartbeat(g.token, 10) == clock.t + 60
    assert ledger.leases.claim("b") is None
    assert ledger.leases.expire_due() == 0


def test_max_attempts_then_failed_then_requeue(db):
    ledger = make_ledger(db, max_attempts=3)
    [tid] = add_tasks(ledger, 1)
    for i in range(3):
        g = ledger.leases.claim(f"c{i}")
        view = ledger.leases.fail(g.token, "failed to read audio file", "error: failed to read audio file", False)
    assert view.state == TaskState.FAILED and view.attempts == 3
    assert "failed to read audio file" in ledger.reports.task(tid).last_error
    assert ledger.leases.claim("c9") is None
    assert ledger.catalogue.requeue(failed=True) == [tid]
    assert ledger.reports.task(tid).state == TaskState.QUEUED and ledger.reports.task(tid).attempts == 0


def test_expiries_count_as_attempts(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=2)
    [tid] = add_tasks(ledger, 1)
    for _ in range(2):
        assert ledger.leases.claim("ghost")
        clock.t += 61
    assert ledger.leases.expire_due() == 1
    t = ledger.reports.task(tid)
    assert t.state == TaskState.FAILED and "lease expired" in t.last_error


def test_error_from_an_expired_lease_does_not_touch_the_new_holder(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    [tid] = add_tasks(ledger, 1)
    old = ledger.leases.claim("old")
    clock.t += 61
    new = ledger.leases.claim("new")
    ledger.leases.fail(old.token, "too late")
    assert ledger.reports.task(tid).state == TaskState.LEASED
    ledger.leases.heartbeat(new.token)  # still live


def test_result_is_written_once(db):
    ledger = make_ledger(db)
    add_tasks(ledger, 1)
    g = ledger.leases.claim("a")
    writes = []
    ledger.leases.complete(g.token, Kept(writes.append))
    ledger.leases.complete(g.token, Kept(writes.append))
    ledger.legacy.complete(g.task_id, Kept(writes.append))
    assert len(writes) == 1


def test_unknown_tokens_and_ids(db):
    ledger = make_ledger(db)
    with pytest.raises(NotFound):
        ledger.leases.heartbeat("nope" * 8)
    with pytest.raises(NotFound):
        ledger.legacy.complete("aaaaaaaaaaaaaaaa", Kept())
    with pytest.raises(NotFound):
        ledger.legacy.fail("aaaaaaaaaaaaaaaa")


def test_restart_keeps_every_state(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=1)
    add_tasks(ledger, 4)
    done, failed, leased = ledger.leases.claim("a"), ledger.leases.claim("b"), ledger.leases.claim("c")
    ledger.leases.complete(done.token, Kept())
    ledger.leases.fail(failed.token, "boom")
    before = {t.id: (t.state, t.attempts, t.last_error) for t in ledger.reports.tasks()}
    ledger.db.dispose()

    reopened = make_ledger(db, clock, max_attempts=1)
    assert {t.id: (t.state, t.attempts, t.last_error) for t in reopened.reports.tasks()} == before
    assert sorted(before[i][0] for i in before) == ["done", "failed", "leased", "queued"]
    reopened.leases.heartbeat(leased.token)  # the lease survived the restart too


def test_language_matching(db):
    ledger = make_ledger(db)
    ledger.catalogue.sync_files([FoundFile(task_id_for("es/a.mp3"), "es/a.mp3", "es/a", "es", 1, 1.0, False)], False)
    assert ledger.leases.claim("en-only", languages=["en", "auto"]) is None
    assert ledger.leases.claim("multi", languages=None).language == "es"


def test_release_hands_back_without_using_an_attempt(db):
    ledger = make_ledger(db)
    add_tasks(ledger, 1)
    g = ledger.leases.claim("volunteer")
    view = ledger.leases.release(g.token)
    assert (view.state, view.attempts) == (TaskState.QUEUED, 0)
    with pytest.raises(NotFound):
        ledger.leases.release(g.token)
    assert ledger.leases.claim("next").attempt == 1


def test_file_changed_while_leased(db):
    ledger = make_ledger(db)
    [tid] = add_tasks(ledger, 1)
    g = ledger.leases.claim("a")
    ledger.catalogue.file_changed(tid, 42, 2.0)
    with pytest.raises(LeaseLost):
        ledger.leases.heartbeat(g.token)
    again = ledger.leases.claim("b")
    assert (again.size, again.sha256, again.attempt) == (42, None, 1)


def test_the_real_error_outlives_expiries(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=3)
    [tid] = add_tasks(ledger, 1)
    ledger.leases.fail(ledger.leases.claim("a").token, "ffprobe cannot read x.mp3")
    ledger.leases.claim("b")
    clock.t += 61
    ledger.leases.expire_due()
    assert ledger.reports.task(tid).last_error == "ffprobe cannot read x.mp3"
    late = ledger.leases.claim("c")
    clock.t += 61
    ledger.leases.expire_due()  # third attempt used up: failed
    ledger.leases.fail(late.token, "ffmpeg cannot decode x.mp3")  # the killed client's report, delivered late
    t = ledger.reports.task(tid)
    assert (t.state, t.last_error) == (TaskState.FAILED, "ffmpeg cannot decode x.mp3")


def test_a_batch_of_claims_and_of_results_undoes_only_the_refused_ones(db, monkeypatch):
    """One transaction for a batch (server/group_commit.py), a savepoint per claim or result: on
    PostgreSQL a failed statement aborts the whole transaction unless its savepoint is rolled back."""
    from sqlalchemy import text

    from server.ledger import Ask, Grant
    from server.ledger.policy import SchedulerKind

    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    ids = add_tasks(ledger, 3)
    touch = ledger.leases.fleet.touch

    def touch_then_fail(c, name, now, caps):
        seen = touch(c, name, now, caps)
        if name == "boom":
            c.execute(text("SELECT no_such_column FROM task"))  # fails in the database itself
        return seen

    monkeypatch.setattr(ledger.leases.fleet, "touch", touch_then_fail)
    a, boom, c, d = ledger.leases.claim_all([Ask(n, capabilities={"model": "base"}) for n in ("a", "boom", "c", "d")])
    assert "no_such_column" in str(boom)
    assert all(isinstance(g, Grant) for g in (a, c, d)) and sorted(g.task_id for g in (a, c, d)) == sorted(ids)
    assert sorted(ledger.reports.stats().active_clients) == ["a", "c", "d"]  # boom's own row undone

    def disk_full(task):
        raise OSError(28, "No space left on device")

    uploads = [(a.token, Kept(), None), ("no-such-token", Kept(), None), (c.token, Kept(disk_full), None)]
    done = ledger.leases.complete_all([*uploads, (d.token, Kept(), None)])
    assert isinstance(done[1], NotFound) and isinstance(done[2], OSError)
    states = {t: ledger.reports.task(t).state for t in ids}
    assert states == {a.task_id: TaskState.DONE, c.task_id: TaskState.LEASED, d.task_id: TaskState.DONE}
