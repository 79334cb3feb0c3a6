"""Each result booked to the attempt that made it, on SQLite and PostgreSQL: a result from before
the file changed is refused, two results racing for one task are decided one after the other (the
second changes nothing), and a legacy report acts on the legacy client's own attempt only."""

from __future__ import annotations

import threading
import time

import pytest

from server.ledger import Grant, JobRequest, LeaseLost, Made, TaskState
from tests.helpers import Clock, Kept, add_tasks, make_ledger

CAPS = {"backend": "cpu", "model": "ggml-base.bin"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def test_a_result_made_before_the_file_changed_is_refused(db):
    ledger = make_ledger(db)
    [tid] = add_tasks(ledger, 1)
    old = ledger.leases.claim("a")
    ledger.catalogue.file_changed(tid, 42, 2.0)  # replaced while leased: the lease is released
    written = []
    with pytest.raises(LeaseLost, match="released"):
        ledger.leases.complete(old.token, Kept(written.append))
    assert written == [] and ledger.reports.task(tid).state == TaskState.QUEUED
    new = ledger.leases.claim("b")
    assert ledger.leases.complete(new.token, Kept(written.append)).task.state == TaskState.DONE
    assert [t.size for t in written] == [42]


def test_two_results_racing_for_one_task_are_decided_one_after_the_other(db):
    clock = Clock()
    ledger = make_ledger(db, clock, replica_budget=1.0)
    [tid] = add_tasks(ledger, 1)
    ledger.catalogue.set_duration(tid, 100, 600_000)
    holder = ledger.leases.claim("laptop", capabilities={**CAPS, "rtf": 0.5})
    clock.t += 10
    copy = ledger.leases.claim("gpu", capabilities={**CAPS, "rtf": 50.0})
    assert isinstance(copy, Grant) and copy.replica and copy.task_id == holder.task_id == tid
    start = threading.Barrier(2)
    writes: list[str] = []
    outcomes: dict[str, bool] = {}

    def deliver(name: str, token: str) -> None:
        def write(_task) -> None:  # slow, so the other result arrives while this one is being written
            writes.append(name)
            time.sleep(0.3)

        start.wait()
        outcomes[name] = ledger.leases.complete(token, Kept(write), Made("ggml-base.bin", "cpu", 600.0)).duplicate

    threads = [threading.Thread(target=deliver, args=a) for a in (("laptop", holder.token), ("gpu", copy.token))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(writes) == 1  # one upload's files, never two interleaved
    assert sorted(outcomes.values()) == [False, True] and outcomes[writes[0]] is False
    assert ledger.reports.task(tid).state == TaskState.DONE


def test_a_legacy_report_acts_on_the_legacy_clients_own_attempt_only(db):
    clock = Clock()
    ledger = make_ledger(db, clock, replica_budget=1.0)
    first, second = add_tasks(ledger, 2)
    for tid in (first, second):
        ledger.catalogue.set_duration(tid, 100, 600_000)
    old = ledger.legacy.claim("fedora")  # the original client: no heartbeat, cannot be told to stop
    v1 = ledger.leases.claim("laptop", capabilities={**CAPS, "rtf": 0.5})
    assert isinstance(old, Grant) and isinstance(v1, Grant) and {old.task_id, v1.task_id} == {first, second}
    clock.t += 10
    copy = ledger.leases.claim("gpu", capabilities={**CAPS, "rtf": 50.0})
    assert isinstance(copy, Grant) and copy.replica and copy.task_id == v1.task_id  # never the legacy one
    # The old client posts /error when it is stopped, and a stray /result may name any task: neither
    # reaches the v1 holder's or the replica's attempt.
    with pytest.raises(LeaseLost, match="never handed out to a legacy client"):
        ledger.legacy.complete(v1.task_id, Kept())
    assert ledger.legacy.fail(v1.task_id).state == TaskState.LEASED
    assert ledger.leases.heartbeat(copy.token) and ledger.leases.heartbeat(v1.token)
    assert ledger.legacy.fail(old.task_id).state == TaskState.QUEUED  # its own attempt: back in the queue


def test_a_legacy_client_is_never_given_a_replica(db):
    clock = Clock()
    ledger = make_ledger(db, clock, replica_budget=1.0)
    [tid] = add_tasks(ledger, 1)
    ledger.catalogue.set_duration(tid, 100, 600_000)
    ledger.leases.claim("laptop", capabilities={**CAPS, "rtf": 0.5})
    clock.t += 10
    assert ledger.legacy.claim("fedora") is None  # it could not be told to stop when the holder wins
    assert ledger.leases.claim("gpu", capabilities={**CAPS, "rtf": 50.0}).replica  # a v1 host may copy it


def test_a_job_never_goes_to_a_legacy_client_nor_completes_through_its_routes(db):
    ledger = make_ledger(db, Clock())
    job = ledger.jobs.create(job_id="jjjjjjjjjjjjjjjj", filename="talk.mp3", stored_as="jjjjjjjjjjjjjjjj/talk.mp3",
                             result_stem="jjjjjjjjjjjjjjjj/result", size=10, mtime=1.0,
                             ask=JobRequest(language="en", model_tier=0, priority=10))  # fmt: skip
    assert job.task.min_tier == 1  # "any model" still means a model the host names
    assert ledger.legacy.claim("legacy:old-box") is None
    with pytest.raises(LeaseLost):
        ledger.legacy.complete(job.id, Kept())  # the legacy routes name only the id: refused
    grant = ledger.leases.claim("laptop", capabilities={"model": "ggml-tiny.en.bin"})
    assert grant is not None and grant.task_id == job.id
    ledger.db.dispose()


@pytest.mark.parametrize("scheduler", ["speed", "fifo"])
def test_a_translation_goes_only_to_a_host_that_can_translate(db, scheduler):
    """English-only models cannot translate, and a client that does not say it can (an older one)
    would transcribe instead: neither gets it, and the queue is not held back for them either."""
    from server.ledger.policy import SchedulerKind

    clock = Clock()
    ledger = make_ledger(db, clock, scheduler=SchedulerKind(scheduler))
    job = ledger.jobs.create(job_id="tttttttttttttttt", filename="tren.mp3", stored_as="tttttttttttttttt/source.mp3",
                             result_stem="tttttttttttttttt/result", size=10, mtime=1.0,
                             ask=JobRequest(priority=20, translate=True))  # fmt: skip
    add_tasks(ledger, 2)
    english_only = {"model": "ggml-tiny.en.bin", "english_only": True, "translate": False}
    older = {"model": "ggml-base-q5_1.bin"}  # says nothing of translating
    able = {"model": "ggml-base-q5_1.bin", "translate": True}
    for name, caps in (("en-box", english_only), ("old-box", older)):
        grant = ledger.leases.claim(name, capabilities=caps)
        assert isinstance(grant, Grant) and grant.task_id != job.id and not grant.translate, name
        clock.t += 1.5  # past the snapshot's second
    assert ledger.legacy.claim("legacy:box") is None
    grant = ledger.leases.claim("multilingual", capabilities=able)
    assert isinstance(grant, Grant) and grant.task_id == job.id and grant.translate
