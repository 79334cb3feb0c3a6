"""An upload's files where validation puts them: kept, held under .held/, compared, promoted, reopened."""

from pathlib import Path

from server.disk.layout import Layout
from server.disk.results import ResultLayout
from server.disk.upload import Upload
from server.ledger import TaskState, TaskView
from server.transcripts.compare import spot_distance, timed_words
from server.transcripts.vtt import clock


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


# A minute of speech as whisper would time it: six cues of ten words, one cue each 10 s.
SPEECH = [f"w{i:02d}" for i in range(60)]


def _vtt(words: list[str], start: float, shift: float = 0.0) -> str:
    """Cues of ten words each 10 s from `start`, timed `shift` seconds earlier (a spot check's own clock)."""
    cues = []
    for k in range(0, len(words), 10):
        a = start + k - shift
        cues.append(f"{clock(round(a * 1000))} --> {clock(round((a + 10) * 1000))}\n{' '.join(words[k : k + 10])}\n")
    return "WEBVTT\n\n" + "\n".join(cues)


def _timed_upload(root: Path, vtt: str, meta: dict) -> Upload:
    layout = Layout(root / "audio", root / "data", ResultLayout(root / "results", ("txt", "vtt")))
    return Upload(layout, {"vtt": vtt.encode(), "txt": b"-"}, meta, max_wer=0.15)


def test_a_spot_check_is_compared_with_the_held_results_words_in_its_range(tmp_path):
    task = _task(duration_ms=60_000, check_start_ms=20_000, check_end_ms=40_000)
    _timed_upload(tmp_path, _vtt(SPEECH, 0.0), {}).hold(task, 1)  # the whole minute, word i at ~i s
    # The range 20-40 s transcribed alone, timed from its start; its edge words cut or missing.
    check = _timed_upload(tmp_path, _vtt(SPEECH[21:39], 1.0, 0.0), {"spot": [20.0, 40.0]})
    assert check.agrees(task, 1)
    check.hold(task, 2)
    assert _timed_upload(tmp_path, _vtt(SPEECH[20:40], 0.0), {"spot": [20, 40]}).agrees(task, 2)  # two ranges
    lies = [f"x{i}" for i in range(20)]
    assert not _timed_upload(tmp_path, _vtt(lies, 0.0), {"spot": [20.0, 40.0]}).agrees(task, 1)
    # Another range claimed: its words are not moved there, so they do not match.
    assert not _timed_upload(tmp_path, _vtt(SPEECH[20:40], 0.0), {"spot": [0.0, 20.0]}).agrees(task, 1)
    # An older client transcribed the whole task: compared in the range all the same.
    whole = _timed_upload(tmp_path, _vtt(SPEECH[:20] + lies[:10] + SPEECH[30:], 0.0), {})
    assert _timed_upload(tmp_path, _vtt(SPEECH, 0.0), {}).agrees(task, 1)
    assert not whole.agrees(task, 1)  # lies at 20-30 s, inside the range
    outside = _timed_upload(tmp_path, _vtt(lies[:10] + SPEECH[10:], 0.0), {})
    assert outside.agrees(task, 1)  # lies at 0-10 s: outside the range, not looked at


def test_spot_distance_counts_words_well_inside_the_range_against_the_others_around_it():
    said = [(i + 0.5, f"w{i}") for i in range(60)]
    assert spot_distance(said, said, 20.0, 40.0) == 0.0
    assert spot_distance([], [], 20.0, 40.0) == 0.0  # two silences agree
    assert spot_distance(said, [], 20.0, 40.0) == 1.0  # words against silence do not
    missing = [w for w in said if w[1] != "w30"]
    assert spot_distance(said, missing, 20.0, 40.0) == 1 / 11  # w24..w35 lie well inside: one of 11 lost
    late = [(t + 3.0, w) for t, w in said]  # timed 3 s off (cue timings): still a stretch around it
    assert spot_distance(said, late, 20.0, 40.0) == 0.0
    assert timed_words({"txt": "a b"}, 10.0, 5.0) == [(7.5, "a"), (12.5, "b")]  # no VTT: spread evenly
    # The true words, then 20,000 more just past the range's end: not speech, so not compared at all.
    stuffed = sorted([*said, *[(41.0, "filler")] * 20_000])
    assert spot_distance(said, stuffed, 20.0, 40.0) == 1.0
