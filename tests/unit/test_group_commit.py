"""Results booked in batches (server/group_commit.py): one transaction for what queued meanwhile,
a refusal undoing only its own upload, the staged files moved into place and none left behind; and
a process killed between the files' flush and the commit, or between the commit and the answers,
loses nothing (the client's outbox sends again: booked then, or answered as a duplicate)."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from server.context import build_context
from server.ledger import Ask, Grant, LeaseLost, NotFound, TaskState, snapshot
from server.ledger.fleet_state import read_fleet
from tests.helpers import make_settings

SETTINGS = {"RESULT_FORMATS": "txt,vtt", "SCHEDULER": "fifo", "SPLIT_SECONDS": "0", "SPEAKERS": "off"}


def _context(root: Path):
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        (audio / f"f{i}.mp3").write_bytes(b"ID3" + bytes([i]) * 64)
    ctx = build_context(make_settings(root, **SETTINGS), event_stream=io.StringIO())
    ctx.scan()
    return ctx


def _files(text: str) -> dict[str, bytes]:
    return {"txt": f"{text}\n".encode(), "vtt": f"WEBVTT\n\n00:00.000 --> 00:01.000\n{text}\n".encode()}


async def _book(ctx, uploads: list[tuple[str, str]]) -> list:
    """Every upload queued before the first is booked: one batch."""
    calls = [ctx.results.submit((token, ctx.upload(_files(text), {"client": "h"}), None)) for token, text in uploads]
    return await asyncio.gather(*calls, return_exceptions=True)


def test_a_batch_is_one_transaction_and_a_refusal_undoes_only_its_own(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    try:
        grants = [ctx.ledger.leases.claim(f"h{i}") for i in range(3)]
        cancelled = grants[2]
        ctx.ledger.catalogue.file_changed(cancelled.task_id, 1, 1.0)  # its lease is handed back: result refused
        batches: list[int] = []
        complete_all = ctx.ledger.leases.complete_all
        monkeypatch.setattr(
            ctx.ledger.leases,
            "complete_all",
            lambda items, flush: batches.append(len(items)) or complete_all(items, flush),
        )
        uploads = [(g.token, f"text of {g.task_id}") for g in grants]
        uploads += [("no-such-lease", "x"), (grants[0].token, "again")]
        done = asyncio.run(_book(ctx, uploads))
        assert batches == [5]
        first, second, refused, unknown, repeat = done
        assert not first.duplicate and not second.duplicate and repeat.duplicate
        assert isinstance(refused, LeaseLost) and isinstance(unknown, NotFound)
        for g in grants[:2]:
            task = ctx.ledger.reports.task(g.task_id)
            assert task.state == TaskState.DONE
            stem = tmp_path / "data" / "results" / task.result_stem
            assert Path(f"{stem}.txt").read_text() == f"text of {g.task_id}\n"
            meta = json.loads(Path(f"{stem}.meta.json").read_text())
            assert (meta["task_id"], meta["formats"]) == (g.task_id, ["txt", "vtt"])
        assert ctx.ledger.reports.task(cancelled.task_id).state != TaskState.DONE
        assert not list(ctx.layout.staged_folder.iterdir())  # every staged file moved or removed
    finally:
        ctx.close()


def test_claims_queued_together_are_one_transaction_each_seeing_the_grants_before_it(tmp_path, monkeypatch):
    ctx = _context(tmp_path)
    try:
        batches: list[int] = []
        write, touch = ctx.claims.write, ctx.ledger.leases.fleet.touch
        monkeypatch.setattr(ctx.claims, "write", lambda asks: batches.append(len(asks)) or write(asks))

        def touch_or_fail(c, name, now, caps):
            seen = touch(c, name, now, caps)  # its row is written, then the claim fails: undone
            if name == "boom":
                raise RuntimeError("boom")
            return seen

        monkeypatch.setattr(ctx.ledger.leases.fleet, "touch", touch_or_fail)

        async def together():
            asks = [Ask(name, capabilities={"model": "ggml-base.bin"}) for name in ("a", "boom", "b", "c", "d", "e")]
            return await asyncio.gather(*(ctx.claims.submit(ask) for ask in asks), return_exceptions=True)

        a, boom, b, c, d, e = asyncio.run(together())
        assert batches == [6]
        assert isinstance(boom, RuntimeError)
        grants = [a, b, c, d]
        assert all(isinstance(g, Grant) for g in grants) and len({g.task_id for g in grants}) == 4
        assert e is None  # four files, four grants: nothing left for the last one
        hosts = sqlite3.connect(tmp_path / "data" / "batch-stt.db").execute("SELECT name FROM client").fetchall()
        assert sorted(h for (h,) in hosts) == ["a", "b", "c", "d", "e"]
    finally:
        ctx.close()


def test_the_fleet_is_read_in_a_worker_thread_while_claims_go_on_with_the_old_snapshot(tmp_path, monkeypatch):
    """The snapshot's read (tens of ms with a large fleet) never holds the event loop nor the claims:
    one read at a time, and a claim that finds it under way goes on with the snapshot as it is."""
    ctx = _context(tmp_path)
    try:
        snapshots = ctx.ledger.leases.snapshots
        readers: list[int] = []
        go_on = threading.Event()

        def read(*args):
            readers.append(threading.get_ident())
            if len(readers) > 1:
                assert go_on.wait(30)  # the second read lasts until the claims below are answered
            return read_fleet(*args)

        monkeypatch.setattr(snapshot, "read_fleet", read)

        async def claim(name: str):
            return await ctx.claims.submit(Ask(name, capabilities={"model": "ggml-base.bin"}))

        async def scenario() -> int:
            assert isinstance(await claim("a"), Grant)  # the first claim waits for the first read
            snapshots._state.taken_at -= 60  # stale: the next claim's batch reads again
            assert isinstance(await claim("b"), Grant)  # ... and is answered while that read lasts
            assert not snapshots.due()  # one read at a time: this one is under way
            assert isinstance(await claim("c"), Grant)
            assert not go_on.is_set() and snapshots._reading
            go_on.set()
            while snapshots._reading:
                await asyncio.sleep(0.01)
            return threading.get_ident()

        loop_thread = asyncio.run(scenario())
        assert len(readers) == 2 and loop_thread not in readers
        assert set(snapshots._state.holding) == {"a", "b", "c"}
    finally:
        ctx.close()


def _disk_full(monkeypatch, ctx) -> None:
    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("server.disk.upload.stage", full)


def _results_elsewhere(monkeypatch, ctx) -> None:
    results = ctx.layout.results.root  # on another file system: a rename could not move a staged file
    monkeypatch.setattr("server.disk.layout._device", lambda path: 2 if path == results else 1)


@pytest.mark.parametrize("unstageable", [_disk_full, _results_elsewhere])
def test_a_result_that_is_not_staged_is_written_in_the_transaction(tmp_path, monkeypatch, unstageable):
    ctx = _context(tmp_path)
    try:
        grant = ctx.ledger.leases.claim("h")
        unstageable(monkeypatch, ctx)
        (done,) = asyncio.run(_book(ctx, [(grant.token, "written where it belongs")]))
        stem = ctx.layout.results.root / done.task.result_stem
        assert Path(f"{stem}.txt").read_text() == "written where it belongs\n"
        assert not ctx.layout.staged_folder.exists()  # nothing was staged
    finally:
        ctx.close()


# The server's own steps, in a process the test kills at one point of them.
CRASH = """
import io, os, sys
from pathlib import Path
from server import group_commit
from server.context import build_context
from tests.helpers import make_settings
from tests.unit.test_group_commit import SETTINGS, _files
ctx = build_context(make_settings(Path(sys.argv[1]), **SETTINGS), event_stream=io.StringIO())
tokens = sys.argv[3:]
uploads = [(t, ctx.upload(_files("text " + t), {"client": "h"}), None) for t in tokens]
staged = group_commit._stage(ctx.ledger, uploads)
def flushed_then_killed():
    for upload in [u for _, u, _ in staged]:
        for folder in upload.staged.folders:
            os.fsync(os.open(folder, os.O_RDONLY))
    if sys.argv[2] == "before-commit":
        os._exit(9)
ctx.ledger.leases.complete_all(staged, flushed_then_killed)
os._exit(9)  # committed, never answered
"""


@pytest.mark.parametrize("moment", ["before-commit", "after-commit"])
def test_killed_between_flush_commit_and_answer_loses_nothing(tmp_path, moment):
    ctx = _context(tmp_path)
    grants = [ctx.ledger.leases.claim(f"h{i}") for i in range(2)]
    ctx.close()
    tokens = [g.token for g in grants]
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), str(tmp_path), moment, *tokens], cwd=root)
    assert run.returncode == 9
    ctx = _context(tmp_path)  # the server again: what did the kill leave?
    try:
        states = {ctx.ledger.reports.task(g.task_id).state for g in grants}
        assert states == ({TaskState.LEASED} if moment == "before-commit" else {TaskState.DONE})
        done = asyncio.run(_book(ctx, [(t, "text " + t) for t in tokens]))  # the clients' outboxes send again
        assert [d.duplicate for d in done] == [moment == "after-commit"] * 2
        for g, t in zip(grants, tokens, strict=True):
            stem = tmp_path / "data" / "results" / ctx.ledger.reports.task(g.task_id).result_stem
            assert Path(f"{stem}.txt").read_text() == f"text {t}\n"
            assert json.loads(Path(f"{stem}.meta.json").read_text())["task_id"] == g.task_id
    finally:
        ctx.close()
