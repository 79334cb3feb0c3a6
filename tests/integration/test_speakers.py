"""Speakers kept apart by the recording itself, through a real server, real clients (a legacy one
beside the v1 daemon) and real whisper-cli with tiny.en: two speakers in two streams of an MKV,
and in the two channels of a stereo MP3, alternating and overlapping (tests/speakers.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import openai
import requests

from server.transcripts.vtt import cues
from tests import legacy_client
from tests.helpers import client_env, run_client, wer_percent
from tests.speakers import alone, as_channels, as_streams, attributed, build_tracks, same_on_both, with_crosstalk

MODEL = "models/ggml-tiny.en.bin"


def wait_done(url: str, task_id: str) -> dict:
    for _ in range(200):  # the stitch runs right after the last part's upload
        task = requests.get(f"{url}/api/v1/tasks/{task_id}", timeout=10).json()
        if task["state"] == "done":
            return task
        time.sleep(0.1)
    raise AssertionError(f"{task_id} is still {task['state']}")


def check_merge(results: dict[str, str], labels: dict[str, str], reference: dict[str, str], report) -> dict[str, str]:
    """The merged formats: each labelled, in time order, no non-speech. Returns each speaker's text."""
    entries = json.loads(results["json"])["transcription"]
    assert all(e["speaker"] in labels.values() for e in entries)
    assert all(w["speaker"] == e["speaker"] for e in entries for w in e.get("words", []))
    starts = [e["offsets"]["from"] for e in entries]
    assert starts == sorted(starts)
    said = {track: " ".join(e["text"] for e in entries if e["speaker"] == label) for track, label in labels.items()}
    labelled = [(e["text"], e["speaker"]) for e in entries]
    for track, label in labels.items():
        share = attributed(reference[track], labelled, label)
        report(f"speakers: {share:.1%} of {label}'s words found under {label}")
        assert share >= 0.95, f"{label}: only {share:.0%} of its words found under its label"
    # Both speak at 9-11 s: both cues are kept, in start order, and each format names its speaker.
    vtt = cues(results["vtt"])
    assert [c.start_ms for c in vtt] == starts and {c.text.split(">")[0] for c in vtt} == {
        f"<v {label}" for label in labels.values()
    }
    srt = cues(results["srt"])
    assert all(c.text.split(":")[0] in labels.values() for c in srt)
    txt = results["txt"].splitlines()
    assert txt[0].startswith(f"{entries[0]['speaker']}: ") and len(txt) == len(entries)
    changes = sum(a["speaker"] != b["speaker"] for a, b in itertools.pairwise(entries))
    assert sum(line.split(":")[0] in labels.values() for line in txt) == changes + 1  # a label at each change
    assert "BLANK_AUDIO" not in results["txt"] + results["json"]
    return said


def test_two_streams_of_an_mkv_are_two_speakers_on_one_timeline(shared, whisper_cli, server_process, tmp_path, report):
    tracks = build_tracks(shared, tmp_path / "tracks")
    calls = tmp_path / "audio" / "calls"
    calls.mkdir(parents=True)
    mkv = as_streams(tracks, calls / "interview.mkv")
    (calls / "mono.mp3").write_bytes((shared / "audio/jfk.mp3").read_bytes())
    same_on_both(shared / "audio/jfk.mp3", calls / "same.mp3")
    srv = server_process(SPLIT_SECONDS=45).start()  # 81 s: two time parts per speaker
    listed = requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json()
    tasks = {t["path"]: t for t in listed if t["parent_id"] is None}
    parts = [t for t in listed if t["parent_id"] == tasks["calls/interview.mkv"]["id"]]
    assert sorted((p["speaker"], p["start_ms"]) for p in parts)[::2] == [("Alice", 0), ("Bob", 0)]
    assert len(parts) == 4 and {p["stream"] for p in parts} == {0, 1}
    assert tasks["calls/mono.mp3"]["state"] == tasks["calls/same.mp3"]["state"] == "queued"  # one speaker each
    live = requests.get(f"{srv.url}/dashboard/live", timeout=10).text
    assert "<td>calls/interview.mkv</td><td>1 min</td><td>Alice, Bob</td>" in live, live
    status = srv.cli("status").stdout
    assert "in parts (split): calls/interview.mkv  0/4 parts done  speakers: Alice, Bob" in status, status

    model = shared / MODEL
    assert legacy_client.work_once(srv.url, whisper_cli, model) is not None  # the original client, unchanged
    assert run_client(client_env(tmp_path, srv.url, model, "laptop"), "--until-idle").returncode == 0
    wait_done(srv.url, tasks["calls/interview.mkv"]["id"])
    out = tmp_path / "data/results/calls"
    results = {f: (out / f"interview.{f}").read_text() for f in ("json", "vtt", "srt", "txt")}
    said = check_merge(results, {"alice": "Alice", "bob": "Bob"}, tracks.reference, report)
    meta = json.loads((out / "interview.meta.json").read_text())
    assert meta["speakers"] == ["Alice", "Bob"] and 80 <= meta["audio_seconds"] <= 82  # the file's length, once
    for track, stream in (("alice", "0:a:0"), ("bob", "0:a:1")):
        merged = wer_percent(tracks.reference[track], said[track])
        baseline = wer_percent(tracks.reference[track], alone(whisper_cli, model, mkv, tmp_path, track, "-map", stream))
        report(f"speakers, MKV streams, {track}: WER {merged:.1f} % merged vs {baseline:.1f} % alone")
        assert merged <= baseline
    for name in ("mono", "same"):  # auto: one speaker, no labels
        entries = json.loads((out / f"{name}.json").read_text())["transcription"]
        assert entries and not any("speaker" in e for e in entries)
        assert "fellow Americans" in (out / f"{name}.txt").read_text()


def test_a_stereo_call_asked_by_channels_names_each_channel(shared, whisper_cli, server_process, tmp_path, report):
    tracks = build_tracks(shared, tmp_path / "tracks")
    call = as_channels(tracks, tmp_path / "call.mp3")
    same = same_on_both(shared / "audio/jfk.mp3", tmp_path / "same.mp3")
    # The request may wait behind both jobs' parts (the daemon can claim them first): on a busy
    # 2-core machine that took over the default 60 s plus the call's length (CI, stop 34).
    srv = server_process(OPENAI_WAIT_SECONDS=600).start()

    def submit(path: Path) -> dict:
        with open(path, "rb") as f:
            r = requests.post(f"{srv.url}/api/v1/jobs", files={"file": (path.name, f)},
                              data={"speakers": "channels"}, timeout=60)  # fmt: skip
        assert r.status_code == 202, r.text
        return r.json()

    jobs = [submit(call), submit(same)]
    env = client_env(tmp_path, srv.url, shared / MODEL, "laptop")
    daemon = subprocess.Popen([sys.executable, "-m", "client.cli", "run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        api = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="none", max_retries=0, timeout=600)
        with open(call, "rb") as f:
            verbose = api.audio.transcriptions.create(
                model="tiny", file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"],
                extra_body={"speakers": "channels"},
            )  # fmt: skip
        # The request went first (its priority is above jobs'): the two jobs follow.
        for _ in range(600):
            if all(requests.get(j["status_url"], timeout=10).json()["state"] == "done" for j in jobs):
                break
            time.sleep(0.5)
    finally:
        daemon.terminate()
        daemon.wait(30)
    segments = [s.model_dump() for s in verbose.segments or []]
    assert {s["speaker"] for s in segments} == {"Speaker 1", "Speaker 2"}
    assert {w.model_dump()["speaker"] for w in verbose.words or []} == {"Speaker 1", "Speaker 2"}

    status = requests.get(jobs[0]["status_url"], timeout=10).json()
    assert status["state"] == "done" and status["speakers"] == ["Speaker 1", "Speaker 2"], status
    results = {f: requests.get(jobs[0]["result_url"], params={"format": f}, timeout=10).text
               for f in ("json", "vtt", "srt", "txt", "md")}  # fmt: skip
    said = check_merge(results, {"alice": "Speaker 1", "bob": "Speaker 2"}, tracks.reference, report)
    assert "**Speaker 1:**" in results["md"] and "**Speaker 2:**" in results["md"]
    for track, channel in (("alice", 0), ("bob", 1)):
        merged = wer_percent(tracks.reference[track], said[track])
        pan = f"pan=mono|c0=c{channel}"
        baseline = wer_percent(
            tracks.reference[track], alone(whisper_cli, shared / MODEL, call, tmp_path, track, "-af", pan)
        )
        report(f"speakers, stereo channels, {track}: WER {merged:.1f} % merged vs {baseline:.1f} % alone")
        assert merged <= baseline
    # The same audio on both channels stays one speaker, though the job asked for channels.
    same_job = requests.get(jobs[1]["status_url"], timeout=10).json()
    assert same_job["state"] == "done" and same_job["speakers"] == []
    assert "speaker" not in requests.get(jobs[1]["result_url"], params={"format": "json"}, timeout=10).text


def test_a_voice_leaking_into_the_other_microphone_stays_with_its_speaker(
    shared, whisper_cli, server_process, tmp_path, report
):
    """Each microphone also picks up the other speaker 20 dB down: whisper transcribes that too (the
    baseline, each track alone, has both speakers' words); the merge keeps each word with its speaker."""
    tracks = with_crosstalk(build_tracks(shared, tmp_path / "tracks"), tmp_path / "tracks")
    (tmp_path / "audio").mkdir()
    mkv = as_streams(tracks, tmp_path / "audio" / "panel.mkv")
    srv = server_process(SPLIT_SECONDS=0).start()
    model = shared / MODEL
    assert run_client(client_env(tmp_path, srv.url, model, "laptop"), "--until-idle").returncode == 0
    (task,) = [t for t in requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json() if t["parent_id"] is None]
    wait_done(srv.url, task["id"])
    out = tmp_path / "data/results"
    results = {f: (out / f"panel.{f}").read_text() for f in ("json", "vtt", "srt", "txt")}
    said = check_merge(results, {"alice": "Alice", "bob": "Bob"}, tracks.reference, report)
    for track, stream in (("alice", "0:a:0"), ("bob", "0:a:1")):
        merged = wer_percent(tracks.reference[track], said[track])
        baseline = wer_percent(tracks.reference[track], alone(whisper_cli, model, mkv, tmp_path, track, "-map", stream))
        report(f"speakers, crosstalk at -20 dB, {track}: WER {merged:.1f} % merged vs {baseline:.1f} % alone")
        assert merged <= baseline


def test_without_ffmpeg_on_the_server_every_file_goes_out_whole(shared, api, tmp_path, monkeypatch):
    """SPLIT_SECONDS and SPEAKERS (both on by default) need ffprobe: without it a file its headers do
    not describe (Matroska) is never probed, so it must not wait for a probe to go out."""
    (tmp_path / "audio").mkdir()
    talk = tmp_path / "audio" / "talk.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(shared / "audio/jfk.mp3"), "-c:a", "copy", str(talk)], check=True
    )
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    c = api()
    r = c.post("/api/v1/leases", json={"client": "laptop"})
    assert r.status_code == 200 and r.json()["path"] == "talk.mkv", r.text
