"""The lease lifecycle, against the Ledger and a real SQLite file."""

from __future__ import annotations

import io
import threading

import pytest

from server.db import init_db, make_engine
from server.events import EventLog
from server.leases import FoundFile, LeaseLost, Ledger, NotFound
from server.models import TaskState
from server.scanner import task_id_for


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    """Every lease test runs on SQLite and, where it is installed, on PostgreSQL."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def make_ledger(db, clock=None, max_attempts: int = 3, lease_seconds: int = 60) -> Ledger:
    engine = make_engine(db if isinstance(db, str) else f"sqlite:///{db}")
    init_db(engine)
    return Ledger(engine, lease_seconds=lease_seconds, legacy_lease_seconds=lease_seconds * 10,
                  max_attempts=max_attempts, events=EventLog(stream=io.StringIO()), clock=clock or Clock())


def add_tasks(ledger: Ledger, n: int, lang: str = "auto") -> list[str]:
    files = [FoundFile(task_id_for(f"f{i:05}.mp3"), f"f{i:05}.mp3", f"f{i:05}", lang, 100, 1.0, False)
             for i in range(n)]
    ledger.sync_files(files, complete_scan=False)
    return [f.task_id for f in files]


def nothing(_task):
    pass


def test_concurrent_claims_never_share_a_task(db):
    ledger = make_ledger(db)
    ids = add_tasks(ledger, 300)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str):
        while (g := ledger.claim(name)) is not None:
            with lock:
                claimed.append(g.task_id)

    threads = [threading.Thread(target=worker, args=(f"c{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every task once, none twice
    assert ledger.stats().counts[TaskState.LEASED] == 300


def test_expired_lease_is_reissued_and_late_result_accepted(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    [tid] = add_tasks(ledger, 1)
    first = ledger.claim("slow")
    assert ledger.claim("other") is None  # held by a live lease
    clock.t += 61
    second = ledger.claim("fast")  # claim reclaims the expired lease by itself
    assert second.task_id == tid and second.token != first.token and second.attempt == 2
    with pytest.raises(LeaseLost):
        ledger.heartbeat(first.token)
    late = ledger.complete(first.token, nothing)  # BOINC-style: accepted, task not done yet
    assert late.late and not late.duplicate and late.task.state == TaskState.DONE
    with pytest.raises(LeaseLost):  # the current holder is told to stop
        ledger.heartbeat(second.token)
    again = ledger.complete(second.token, nothing)
    assert again.duplicate and again.task.state == TaskState.DONE


def test_heartbeat_extends_lease(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    add_tasks(ledger, 1)
    g = ledger.claim("a")
    for _ in range(5):
        clock.t += 50
        assert ledger.heartbeat(g.token, 10) == clock.t + 60
    assert ledger.claim("b") is None
    assert ledger.expire_due() == 0


def test_max_attempts_then_failed_then_requeue(db):
    ledger = make_ledger(db, max_attempts=3)
    [tid] = add_tasks(ledger, 1)
    for i in range(3):
        g = ledger.claim(f"c{i}")
        view = ledger.fail(g.token, "failed to read audio file", "error: failed to read audio file", False)
    assert view.state == TaskState.FAILED and view.attempts == 3
    assert "failed to read audio file" in ledger.task(tid).last_error
    assert ledger.claim("c9") is None
    assert ledger.requeue(failed=True) == [tid]
    assert ledger.task(tid).state == TaskState.QUEUED and ledger.task(tid).attempts == 0


def test_expiries_count_as_attempts(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=2)
    [tid] = add_tasks(ledger, 1)
    for _ in range(2):
        assert ledger.claim("ghost")
        clock.t += 61
    assert ledger.expire_due() == 1
    t = ledger.task(tid)
    assert t.state == TaskState.FAILED and "lease expired" in t.last_error


def test_error_from_an_expired_lease_does_not_touch_the_new_holder(db):
    clock = Clock()
    ledger = make_ledger(db, clock)
    [tid] = add_tasks(ledger, 1)
    old = ledger.claim("old")
    clock.t += 61
    new = ledger.claim("new")
    ledger.fail(old.token, "too late")
    assert ledger.task(tid).state == TaskState.LEASED
    ledger.heartbeat(new.token)  # still live


def test_result_is_written_once(db):
    ledger = make_ledger(db)
    add_tasks(ledger, 1)
    g = ledger.claim("a")
    writes = []
    ledger.complete(g.token, writes.append)
    ledger.complete(g.token, writes.append)
    ledger.complete_legacy(g.task_id, writes.append)
    assert len(writes) == 1


def test_unknown_tokens_and_ids(db):
    ledger = make_ledger(db)
    with pytest.raises(NotFound):
        ledger.heartbeat("nope" * 8)
    with pytest.raises(NotFound):
        ledger.complete_legacy("aaaaaaaaaaaaaaaa", nothing)
    with pytest.raises(NotFound):
        ledger.fail_legacy("aaaaaaaaaaaaaaaa")


def test_restart_keeps_every_state(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=1)
    add_tasks(ledger, 4)
    done, failed, leased = ledger.claim("a"), ledger.claim("b"), ledger.claim("c")
    ledger.complete(done.token, nothing)
    ledger.fail(failed.token, "boom")
    before = {t.id: (t.state, t.attempts, t.last_error) for t in ledger.tasks()}
    ledger.engine.dispose()

    reopened = make_ledger(db, clock, max_attempts=1)
    assert {t.id: (t.state, t.attempts, t.last_error) for t in reopened.tasks()} == before
    assert sorted(before[i][0] for i in before) == ["done", "failed", "leased", "queued"]
    reopened.heartbeat(leased.token)  # the lease survived the restart too


def test_language_matching(db):
    ledger = make_ledger(db)
    ledger.sync_files([FoundFile(task_id_for("es/a.mp3"), "es/a.mp3", "es/a", "es", 1, 1.0, False)], False)
    assert ledger.claim("en-only", languages=["en", "auto"]) is None
    assert ledger.claim("multi", languages=None).language == "es"


def _claim_all(db: str, name: str, out) -> None:
    ledger = make_ledger(db)
    got = []
    while (g := ledger.claim(name)) is not None:
        got.append(g.task_id)
    out.put(got)


def test_processes_claiming_at_once_never_share_a_task(db):
    """Several server processes (WORKERS > 1, or several servers) on one database."""
    import multiprocessing as mp

    ledger = make_ledger(db)
    ids = add_tasks(ledger, 400)
    ledger.engine.dispose()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(db, f"p{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [tid for _ in procs for tid in out.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(claimed) == sorted(ids)


def test_release_hands_back_without_using_an_attempt(db):
    ledger = make_ledger(db)
    add_tasks(ledger, 1)
    g = ledger.claim("volunteer")
    view = ledger.release(g.token)
    assert (view.state, view.attempts) == (TaskState.QUEUED, 0)
    with pytest.raises(NotFound):
        ledger.release(g.token)
    assert ledger.claim("next").attempt == 1


def test_file_changed_while_leased(db):
    ledger = make_ledger(db)
    [tid] = add_tasks(ledger, 1)
    g = ledger.claim("a")
    ledger.file_changed(tid, 42, 2.0)
    with pytest.raises(LeaseLost):
        ledger.heartbeat(g.token)
    again = ledger.claim("b")
    assert (again.size, again.sha256, again.attempt) == (42, None, 1)


def test_the_real_error_outlives_expiries(db):
    clock = Clock()
    ledger = make_ledger(db, clock, max_attempts=3)
    [tid] = add_tasks(ledger, 1)
    ledger.fail(ledger.claim("a").token, "ffprobe cannot read x.mp3")
    ledger.claim("b")
    clock.t += 61
    ledger.expire_due()
    assert ledger.task(tid).last_error == "ffprobe cannot read x.mp3"
    late = ledger.claim("c")
    clock.t += 61
    ledger.expire_due()  # third attempt used up: failed
    ledger.fail(late.token, "ffmpeg cannot decode x.mp3")  # the killed client's report, delivered late
    t = ledger.task(tid)
    assert (t.state, t.last_error) == (TaskState.FAILED, "ffmpeg cannot decode x.mp3")
