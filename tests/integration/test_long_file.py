"""A long file, end to end: a real server cuts it into parts, two real `stt-client` processes
transcribe them with real whisper-cli and ggml-tiny.en.bin, the server stitches one result. Its
quality is measured against bare whisper-cli on the whole file (same model, same threads)."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests

from server.transcripts.vtt import cues
from tests.helpers import build_long_speech, client_env, wer_percent

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng is not installed (install.sh --dev)")
THREADS = 1  # per client and for the baseline: two clients share this machine's two cores
SPLIT_SECONDS = 40


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def whole_file_baseline(whisper_cli, model, audio, work) -> str:
    wav = work / "whole.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-i", audio, "-ar", "16000", "-ac", "1", wav], check=True)
    cmd = [whisper_cli, "-m", model, "-f", wav, "-t", str(THREADS), "-l", "en", "-otxt", "-of", work / "whole"]
    subprocess.run(cmd, check=True, capture_output=True)
    return (work / "whole.txt").read_text()


def errors_at_cuts(reference: list[str], stitched: list[tuple[str, int]], radius: int = 3) -> list[str]:
    """Words lost or added within `radius` words of each cut, by aligning the stitched words
    (each tagged with its part) to the reference."""
    hyp = [w for w, _ in stitched]
    ops = difflib.SequenceMatcher(None, reference, hyp, autojunk=False).get_opcodes()
    problems = []
    for k in range(1, stitched[-1][1] + 1):
        first = next(i for i, (_, part) in enumerate(stitched) if part == k)  # the first word after cut k
        for tag, i1, i2, j1, j2 in ops:
            near = j1 - radius <= first <= j2 + radius
            if tag == "delete" and near:
                problems.append(f"cut {k}: lost {reference[i1:i2]}")
            if tag == "insert" and near:
                problems.append(f"cut {k}: added {hyp[j1:j2]}")
            if tag == "replace" and near and (i2 - i1) != (j2 - j1):
                problems.append(f"cut {k}: {reference[i1:i2]} became {hyp[j1:j2]}")
    return problems


def test_a_long_file_is_split_transcribed_by_two_clients_and_stitched(
    shared, whisper_cli, server_process, tmp_path, report
):
    audio = tmp_path / "audio" / "lectures" / "long.mp3"
    audio.parent.mkdir(parents=True)
    reference = build_long_speech(shared, audio)
    model = shared / "models/ggml-tiny.en.bin"
    server = server_process(SPLIT_SECONDS=SPLIT_SECONDS).start()
    for _ in range(200):
        tasks = requests.get(server.url + "/api/v1/tasks").json()
        if tasks[0]["state"] == "split":
            break
        time.sleep(0.1)
    file_id, parts = tasks[0]["id"], tasks[1:]
    assert len(parts) == 4, tasks

    started = time.monotonic()
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", "client.cli", "run", "--until-idle"],
            env=client_env(tmp_path, server.url, model, name, THREADS=THREADS),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    outputs = [c.communicate(timeout=600)[0] for c in clients]
    wall = time.monotonic() - started
    assert [c.returncode for c in clients] == [0, 0], outputs
    for _ in range(100):  # the stitch runs right after the last part's upload
        if requests.get(f"{server.url}/api/v1/tasks/{file_id}").json()["state"] == "done":
            break
        time.sleep(0.1)
    out = tmp_path / "data/results/lectures"
    meta = json.loads((out / "long.meta.json").read_text())
    assert sorted({p["client"] for p in meta["parts"]}) == ["alpha", "beta"]  # both got parts
    assert meta["formats"] == ["json", "srt", "txt", "vtt"]

    # Timestamps: on the file's timeline, in order, the last cue near the end, JSON agreeing.
    duration_ms = tasks[0]["duration_ms"]
    vtt, srt = cues((out / "long.vtt").read_text()), cues((out / "long.srt").read_text())
    assert vtt == srt
    starts = [c.start_ms for c in vtt]
    assert starts == sorted(starts) and all(c.start_ms <= c.end_ms for c in vtt)
    assert duration_ms - 5000 <= vtt[-1].end_ms <= duration_ms
    entries = json.loads((out / "long.json").read_text())["transcription"]
    assert [(e["offsets"]["from"], e["offsets"]["to"]) for e in entries] == [(c.start_ms, c.end_ms) for c in vtt]
    timed = [w["offsets"]["from"] for e in entries for w in e["words"]]  # word timings, moved with their part
    assert len(timed) > 200 and timed == sorted(timed) and timed[-1] <= duration_ms

    # No word lost or doubled at a cut.
    bounds = [p["start_ms"] for p in meta["parts"]]
    tagged = [(w, sum(e["offsets"]["from"] >= b for b in bounds) - 1) for e in entries for w in words(e["text"])]
    assert errors_at_cuts(words(reference), tagged) == []

    # Quality: no worse than whisper-cli on the whole file.
    stitched_wer = wer_percent(reference, (out / "long.txt").read_text())
    whole_wer = wer_percent(reference, whole_file_baseline(whisper_cli, model, audio, tmp_path))
    report(
        f"long file ({duration_ms / 1000:.0f} s, {len(parts)} parts, tiny.en, -t {THREADS}): "
        f"WER stitched {stitched_wer:.1f} % vs whole file {whole_wer:.1f} %; two clients took {wall:.0f} s"
    )
    report(f"  cuts: {', '.join(p['cut'] for p in meta['parts'][1:])}")
    assert stitched_wer <= whole_wer
