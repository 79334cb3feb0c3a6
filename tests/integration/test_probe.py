"""The server learns each file's duration with real ffprobe, in housekeeping, and again when it changes."""

from __future__ import annotations

import shutil

from server.disk.results import ResultLayout
from server.disk.scanner import probe_pending, scan
from server.disk.sidecar import LanguageRule
from tests.helpers import copy_audio, make_ledger


def test_durations_are_probed_once_and_again_after_a_change(shared, tmp_path):
    audio = tmp_path / "audio"
    copy_audio(shared, audio, {"jfk.mp3": "jfk.mp3", "long.mp3": "millbrook.mp3", "bad.mp3": "corrupt-garbage.mp3"})
    (audio / "empty.mp3").write_bytes(b"")
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}")
    scan(ledger.catalogue, audio, ResultLayout(tmp_path / "results"), LanguageRule())
    assert {t.duration_ms for t in ledger.reports.tasks()} == {None}

    assert probe_pending(ledger.catalogue, audio) == 3  # the empty file is never probed
    by_path = {t.path: t.duration_ms for t in ledger.reports.tasks()}
    assert 10_500 < by_path["jfk.mp3"] < 11_500, by_path
    assert 55_000 < by_path["long.mp3"] < 70_000, by_path
    assert by_path["bad.mp3"] == 0  # ffprobe cannot tell: not probed again until it changes
    assert by_path["empty.mp3"] is None
    assert probe_pending(ledger.catalogue, audio) == 0

    shutil.copy(shared / "audio" / "millbrook.mp3", audio / "jfk.mp3")  # replaced by a longer file
    scan(ledger.catalogue, audio, ResultLayout(tmp_path / "results"), LanguageRule())
    assert probe_pending(ledger.catalogue, audio) == 1
    again = {t.path: t.duration_ms for t in ledger.reports.tasks()}
    assert again == {**by_path, "jfk.mp3": by_path["long.mp3"]}
