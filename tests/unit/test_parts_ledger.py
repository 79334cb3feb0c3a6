"""Long files as parts, in the ledger: splitting, leasing, failing, requeueing, invalidating, stitching
readiness (tests/integration/test_ledger_postgres.py runs them on PostgreSQL too). Parts go out in
time order (FIFO) here, so each test knows which part a claim gets."""

from __future__ import annotations

import pytest

from server.disk.scanner import task_id_for
from server.ledger import FoundFile, Made, PlannedPart, TaskState, Wait, WaitReason
from server.ledger.policy import SchedulerKind
from tests.helpers import Clock, Kept, make_ledger


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


SECOND = Made("ggml-tiny.en.bin", "cpu", 1.0)


PLAN = [
    PlannedPart(0, 590_000, "start"),
    PlannedPart(590_000, 1_210_000, "pause"),
    PlannedPart(1_210_000, 1_800_000, "x"),
]


def split_file(ledger, path="long.mp3", size=1000, plan=PLAN, split_ms=600_000):
    fid = task_id_for(path)
    ledger.catalogue.sync_files([FoundFile(fid, path, path[:-4], "en", size, 1.0, False)], complete_scan=False)
    file = ledger.reports.task(fid)
    assert ledger.parts.split(file, size, plan[-1].end_ms, split_ms, plan)
    return fid, [p.id for p in ledger.parts.of(fid)]


def finish(ledger, name="c"):
    grant = ledger.leases.claim(name)
    return ledger.leases.complete(grant.token, Kept(), SECOND)


def test_a_split_file_hands_out_its_parts_in_order_and_is_ready_when_all_are_done(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    fid, parts = split_file(ledger)
    assert ledger.reports.task(fid).state == TaskState.SPLIT
    grants = [ledger.leases.claim(f"c{i}") for i in range(3)]
    assert [g.task_id for g in grants] == parts  # three clients work on one file at once
    assert [(g.parent_id, g.start_ms, g.end_ms, g.duration_ms) for g in grants][1] == (
        fid,
        590_000,
        1_210_000,
        1_800_000,
    )
    assert ledger.leases.claim("c4") is None  # the file itself is never handed out
    done = [ledger.leases.complete(g.token, Kept(), SECOND) for g in grants]
    assert [d.file_ready for d in done] == [None, None, fid]
    assert ledger.parts.ready() == [fid]
    assert [p.client for p in ledger.parts.of(fid)] == ["c0", "c1", "c2"]
    assert ledger.parts.progress([fid]) == {fid: (3, 3)}
    assert ledger.parts.mark_stitched(fid, 1800.0) and not ledger.parts.mark_stitched(fid, 1800.0)
    assert ledger.reports.task(fid).state == TaskState.DONE and ledger.parts.ready() == []


def test_a_file_already_handed_out_whole_is_not_split(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    fid = task_id_for("a.mp3")
    ledger.catalogue.sync_files([FoundFile(fid, "a.mp3", "a", "en", 10, 1.0, False)])
    file = ledger.reports.task(fid)
    ledger.leases.claim("c")
    assert not ledger.parts.split(file, 10, 1_800_000, 600_000, PLAN)
    assert ledger.parts.of(fid) == [] and ledger.reports.task(fid).state == TaskState.LEASED


def test_while_splitting_a_file_goes_out_only_once_probed(tmp_path):
    from server.ledger import Ledger
    from server.ledger.events import EventLog

    ledger = Ledger.open(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        lease_seconds=60,
        legacy_lease_seconds=600,
        max_attempts=3,
        events=EventLog(),
        splitting=True,
        clock=Clock(),
    )
    fid = task_id_for("a.mp3")
    ledger.catalogue.sync_files([FoundFile(fid, "a.mp3", "a", "en", 10, 1.0, False)])
    assert ledger.leases.claim("c") == Wait(WaitReason.PROBING, 5.0)  # not "nothing": ask again soon
    ledger.catalogue.set_duration(fid, 10, 5000)
    assert ledger.leases.claim("c").task_id == fid


def test_a_part_that_fails_for_good_fails_its_file_and_requeue_redoes_only_that_part(db):
    ledger = make_ledger(db, max_attempts=1, scheduler=SchedulerKind.FIFO)
    fid, _parts = split_file(ledger)
    finish(ledger)
    bad = ledger.leases.claim("c")
    ledger.leases.fail(bad.token, "cannot decode frame 1234")
    file = ledger.reports.task(fid)
    assert file.state == TaskState.FAILED
    assert file.last_error == "part 0:09:50-0:20:10 failed: cannot decode frame 1234"
    finish(ledger)  # the other parts go on: their work is kept for a requeue
    assert ledger.catalogue.requeue([fid]) == [fid]
    assert [p.state for p in ledger.parts.of(fid)] == [TaskState.DONE, TaskState.QUEUED, TaskState.DONE]
    assert ledger.reports.task(fid).state == TaskState.SPLIT
    assert finish(ledger).file_ready == fid


def test_requeue_failed_reopens_files_and_a_named_part(db):
    ledger = make_ledger(db, max_attempts=1, scheduler=SchedulerKind.FIFO)
    fid, parts = split_file(ledger)
    for _ in parts:
        g = ledger.leases.claim("c")
        ledger.leases.fail(g.token, "broken")
    assert ledger.reports.task(fid).state == TaskState.FAILED
    ledger.catalogue.requeue([parts[0]])  # one part back: two are still failed, so is the file
    assert ledger.reports.task(fid).state == TaskState.FAILED
    ledger.catalogue.requeue(failed=True)
    assert ledger.reports.task(fid).state == TaskState.SPLIT
    assert [p.state for p in ledger.parts.of(fid)] == [TaskState.QUEUED] * 3


def test_requeue_of_a_stitched_file_starts_it_over_whole(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    fid, parts = split_file(ledger)
    for _ in parts:
        finish(ledger)
    ledger.parts.mark_stitched(fid, 1800.0)
    ledger.catalogue.requeue([fid])
    file = ledger.reports.task(fid)
    assert (file.state, ledger.parts.of(fid)) == (TaskState.QUEUED, [])
    assert ledger.catalogue.unprobed()[0].id == fid  # to be probed, and so cut anew


def test_a_replaced_file_drops_its_parts_and_their_leases(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    fid, _parts = split_file(ledger)
    finish(ledger)
    held = ledger.leases.claim("c")
    ledger.catalogue.sync_files([FoundFile(fid, "long.mp3", "long", "en", 2000, 2.0, False)], complete_scan=False)
    file = ledger.reports.task(fid)
    assert (file.state, file.duration_ms, file.size, ledger.parts.of(fid)) == (TaskState.QUEUED, None, 2000, [])
    with pytest.raises(Exception, match="unknown lease token"):
        ledger.leases.heartbeat(held.token)
    assert ledger.leases.claim("c").task_id == fid  # whole until probed and cut again


def test_a_file_changed_under_a_lease_drops_its_parts(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    fid, _ = split_file(ledger)
    ledger.leases.claim("c")
    ledger.catalogue.file_changed(fid, 5, 9.0)
    assert ledger.reports.task(fid).state == TaskState.QUEUED and ledger.parts.of(fid) == []


def test_a_vanished_file_loses_unfinished_parts_and_returns_queued(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    fid, _ = split_file(ledger)
    ledger.catalogue.sync_files([])
    assert ledger.reports.task(fid).state == TaskState.MISSING and ledger.parts.of(fid) == []
    ledger.catalogue.sync_files([FoundFile(fid, "long.mp3", "long", "en", 1000, 1.0, False)])
    file = ledger.reports.task(fid)
    assert (file.state, file.duration_ms) == (TaskState.QUEUED, None)


def test_a_new_split_seconds_recuts_only_files_nobody_started(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    started, _ = split_file(ledger, "a.mp3")
    untouched, _ = split_file(ledger, "b.mp3")
    ledger.leases.claim("c")  # a.mp3's first part
    assert ledger.parts.stale(300_000) == [untouched]
    assert ledger.parts.unsplit(untouched, 300_000)
    assert not ledger.parts.unsplit(started, 300_000)
    assert ledger.reports.task(untouched).state == TaskState.QUEUED and ledger.parts.of(untouched) == []
    assert ledger.parts.stale(0) == []  # SPLIT_SECONDS=0 would not touch a.mp3 either: it was started


def test_a_file_cut_per_speaker_has_a_part_per_range_and_speaker_and_shows_its_speakers(db):
    ledger = make_ledger(db, scheduler=SchedulerKind.FIFO)
    times = [PlannedPart(0, 50_000, "start"), PlannedPart(50_000, 90_000, "pause")]
    plan = [PlannedPart(p.start_ms, p.end_ms, p.note, stream, None, name) for stream, name in ((1, "Bo"), (0, "Ann"))
            for p in times]  # fmt: skip
    fid, parts = split_file(ledger, path="call.mkv", plan=plan, split_ms=0)
    assert len(set(parts)) == 4  # a part's id names its range and its speaker's track
    assert [(p.start_ms, p.speaker) for p in ledger.parts.of(fid)] == [(0, "Ann"), (0, "Bo"), (50_000, "Ann"),
                                                                       (50_000, "Bo")]  # fmt: skip
    (shown,) = ledger.reports.split_files()
    assert shown.speakers == ("Ann", "Bo") and (shown.parts_done, shown.parts) == (0, 4)  # in stream order
    first, second = ledger.leases.claim("c"), ledger.leases.claim("d")  # the first range, of either speaker
    assert {(g.start_ms, ledger.reports.task(g.task_id).speaker) for g in (first, second)} == {(0, "Ann"), (0, "Bo")}
    assert ledger.parts.stale(0) == []  # cut for SPLIT_SECONDS=0: kept while that stays the setting
