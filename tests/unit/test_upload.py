"""An upload's files where validation puts them: kept, held under .held/, compared, promoted, reopened."""

from pathlib import Path

from server.disk.layout import Layout
from server.disk.results import ResultLayout
from server.disk.upload import Upload
from server.ledger import TaskState, TaskView


def _task(**kw) -> TaskView:
    base = dict(id="abcdefghijklmnop", path="a/talk.mp3", result_stem="a/talk", language="en", state=TaskState.LEASED,
                attempts=1, size=1, sha256=None, last_error=None, audio_seconds=None, updated_at=0.0, done_at=None,
                mtime=0.0, duration_ms=None, parent_id=None, start_ms=None, end_ms=None, note=None, job_id=None,
                priority=0, min_tier=0, validate_all=False, translate=False, prompt=None, temperature=None)  # fmt: skip
    return TaskView(**{**base, **kw})


def _upload(root: Path, text: str) -> Upload:
    layout = Layout(root / "audio", root / "data", ResultLayout(root / "results", ("txt", "vtt")))
    files = {"txt": f"{text}\n".encode(), "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n".encode()}
    return Upload(layout, files, {"client": text}, max_wer=0.15)


def test_held_compared_promoted_and_reopened(tmp_path):
    task = _task()
    first, liar = _upload(tmp_path, "And so my fellow Americans."), _upload(tmp_path, "banana window purple engine")
    first.hold(task, 7)
    assert (tmp_path / "results/.held" / task.id / "7.txt").read_text() == "And so my fellow Americans.\n"
    assert _upload(tmp_path, "and so, my fellow americans").agrees(task, 7)  # case and punctuation aside
    assert not liar.agrees(task, 7)
    liar.promote(task, 7)  # the held result becomes the file's, whoever uploaded last
    assert (tmp_path / "results/a/talk.txt").read_text() == "And so my fellow Americans.\n"
    liar.keep(task)
    assert liar.reopen(task, 9) and liar.agrees(task, 9)  # the kept result, held again for a check
    assert not liar.reopen(_task(result_stem="a/gone"), 10)  # nothing kept: nothing to check
