"""Scanning AUDIO_DIR and refusing paths that lead outside it."""

from __future__ import annotations

import os

import pytest

from server.disk import scanner
from server.disk.paths import UnsafePath, safe_join
from server.disk.results import ResultLayout
from server.disk.scanner import checksum_pending, probe_pending, result_stems, scan, task_id_for, walk
from server.disk.sidecar import LanguageRule, language_for_folder
from tests.helpers import Clock, make_ledger


def touch(path, data=b"x" * 10):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../x", "a\x00b", "a\\..\\b", ""])
def test_safe_join_refuses_tricks(tmp_path, bad):
    with pytest.raises(UnsafePath):
        safe_join(tmp_path, bad)


def test_safe_join_refuses_symlink_out(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "secret.mp3").write_bytes(b"s")
    os.symlink(tmp_path / "secret.mp3", tmp_path / "base" / "link.mp3")
    os.symlink(tmp_path, tmp_path / "base" / "dirlink")
    with pytest.raises(UnsafePath):
        safe_join(tmp_path / "base", "link.mp3")
    with pytest.raises(UnsafePath):
        safe_join(tmp_path / "base", "dirlink/secret.mp3")
    assert safe_join(tmp_path / "base", "sub/new.txt") == (tmp_path / "base" / "sub" / "new.txt").resolve()


def test_safe_join_refuses_a_dangling_link_out_and_a_sibling_named_like_base(tmp_path):
    """A result's name that is a symlink to a file still to be written outside, or into a sibling
    folder whose name begins with the base's, is outside all the same."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base2").mkdir()
    os.symlink(tmp_path / "elsewhere" / "x.meta.json", tmp_path / "base" / "x.meta.json")
    os.symlink(tmp_path / "base2", tmp_path / "base" / "twin")
    for name in ("x.meta.json", "twin/y.txt", "twin"):
        with pytest.raises(UnsafePath):
            safe_join(tmp_path / "base", name)
    os.symlink(tmp_path / "base" / "sub", tmp_path / "base" / "inside")
    assert safe_join(tmp_path / "base", "inside/z.txt") == (tmp_path / "base" / "sub" / "z.txt").resolve()


def test_walk_finds_media_and_skips_escapes(tmp_path):
    audio = tmp_path / "audio"
    touch(audio / "a.mp3")
    touch(audio / "de" / "b.M4A")
    touch(audio / "notes.txt")
    touch(audio / ".hidden.mp3")
    touch(tmp_path / "outside.mp3")
    os.symlink(tmp_path / "outside.mp3", audio / "escape.mp3")
    os.symlink(tmp_path, audio / "loop")
    os.symlink(audio / "a.mp3", audio / "inside-link.mp3")
    assert sorted(walk(audio)) == ["a.mp3", "de/b.M4A", "inside-link.mp3"]


def test_language_from_folder():
    assert language_for_folder("de/interviews/x.mp3", "auto") == "de"
    assert language_for_folder("es/de/x.mp3", "auto") == "de"  # deepest wins
    assert language_for_folder("talks/x.mp3", "en") == "en"
    assert language_for_folder("de.mp3", "auto") == "auto"  # a file name is not a folder


def test_ids_are_stable_and_filesystem_safe():
    a = task_id_for("x/y.mp3")
    assert a == task_id_for("x/y.mp3") and a != task_id_for("x/z.mp3")
    assert len(a) == 16 and a.isalnum() and a.islower()


def test_result_stems_keep_side_by_side_files_apart():
    assert result_stems(["a/b.mp3", "a/b.wav", "a/c.mp3"]) == {
        "a/b.mp3": "a/b.mp3",
        "a/b.wav": "a/b.wav",
        "a/c.mp3": "a/c",
    }


def test_scan_lifecycle(tmp_path):
    audio, results = tmp_path / "audio", tmp_path / "results"
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}")
    touch(audio / "one.mp3")
    touch(audio / "fr" / "two.mp3")
    touch(audio / "empty.mp3", b"")
    touch(results / "old.vtt", b"WEBVTT")
    touch(audio / "old.mp3")
    r = scan(ledger.catalogue, audio, ResultLayout(results), LanguageRule())
    assert r.added == 4
    by_path = {t.path: t for t in ledger.reports.tasks()}
    assert by_path["fr/two.mp3"].language == "fr"
    assert by_path["old.mp3"].state == "done"  # a result already exists: not queued again
    assert by_path["empty.mp3"].state == "failed" and "empty" in by_path["empty.mp3"].last_error
    assert by_path["one.mp3"].sha256 is None  # the scan only stats; checksums come after
    assert checksum_pending(ledger.catalogue, audio) == 4  # the done one too: results are kept, files may be re-done
    assert len(ledger.reports.task(by_path["one.mp3"].id).sha256) == 64

    (audio / "one.mp3").unlink()
    touch(audio / "fr" / "two.mp3", b"different content")
    r = scan(ledger.catalogue, audio, ResultLayout(results), LanguageRule())
    assert (r.missing, r.changed) == (1, 1)
    by_path = {t.path: t for t in ledger.reports.tasks()}
    assert by_path["one.mp3"].state == "missing"
    assert by_path["fr/two.mp3"].size == len(b"different content")

    touch(audio / "one.mp3")
    assert scan(ledger.catalogue, audio, ResultLayout(results), LanguageRule()).returned == 1
    assert ledger.reports.task(by_path["one.mp3"].id).state == "queued"


def test_rescan_writes_only_what_changed(tmp_path):
    audio, clock = tmp_path / "audio", Clock()
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    touch(audio / "a.mp3")
    touch(audio / "b.mp3")
    scan(ledger.catalogue, audio, ResultLayout(tmp_path / "results"), LanguageRule())
    clock.t += 300
    touch(audio / "b.mp3", b"new content")
    scan(ledger.catalogue, audio, ResultLayout(tmp_path / "results"), LanguageRule())
    updated = {t.path: t.updated_at for t in ledger.reports.tasks()}
    assert updated == {"a.mp3": 1_000_000.0, "b.mp3": 1_000_300.0}


@pytest.mark.parametrize(("batch", "seconds", "writes"), [(2, 3600.0, [2, 2, 1]), (1000, 0.0, [1, 1, 1, 1, 1])])
def test_checksums_and_lengths_go_out_a_batch_at_a_time_or_every_few_seconds(
    tmp_path, monkeypatch, batch, seconds, writes
):
    """A fresh library's first files go out within BATCH_SECONDS even while each file is slow (long
    files to checksum, formats only ffprobe reads), and a fast pass writes BATCH rows at a time."""
    audio = tmp_path / "audio"
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}")
    for i in range(5):
        touch(audio / f"{i}.mp3", bytes([i]) * 100)
    scan(ledger.catalogue, audio, ResultLayout(tmp_path / "results"), LanguageRule())
    monkeypatch.setattr(scanner, "BATCH", batch)
    monkeypatch.setattr(scanner, "BATCH_SECONDS", seconds)
    written: dict[str, list[int]] = {"set_hashes": [], "set_durations": []}
    for name, sizes in written.items():
        real = getattr(ledger.catalogue, name)
        spy = lambda rows, real=real, sizes=sizes: (sizes.append(len(rows)), real(rows))  # noqa: E731
        monkeypatch.setattr(ledger.catalogue, name, spy)

    assert checksum_pending(ledger.catalogue, audio) == 5
    assert probe_pending(ledger.catalogue, audio) == 5
    assert [n for n in written["set_hashes"] if n] == writes
    assert [n for n in written["set_durations"] if n] == writes
    tasks = ledger.reports.tasks()
    assert all(t.sha256 and t.duration_ms is not None for t in tasks), tasks
