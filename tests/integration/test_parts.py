"""Long files as parts over HTTP, with real ffmpeg: range serving, legacy parts, stitching, failures,
requeue, replaced files, SPLIT_SECONDS=0. Results are uploaded by hand here; test_long_file.py runs
real clients and real whisper-cli."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time

import pytest

import server.disk.results
from server.transcripts.vtt import cues
from tests.helpers import ServerProcess

ADMIN = "admin-token-0123456789"
pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed")


@pytest.fixture
def long_mp3(shared, tmp_path):
    """millbrook, a 1.5 s pause, jfk: 75 s of speech, three parts at SPLIT_SECONDS=30."""
    dest = tmp_path / "audio" / "talks" / "long.mp3"
    dest.parent.mkdir(parents=True)
    graph = "[0:a][1:a][2:a]concat=n=3:v=0:a=1"
    pause = "anullsrc=r=44100:cl=mono:d=1.5"
    # fmt: off
    subprocess.run(["ffmpeg", "-v", "error", "-i", shared / "audio/millbrook.mp3", "-f", "lavfi", "-i", pause,
                    "-i", shared / "audio/jfk.mp3", "-filter_complex", graph, "-ac", "1", "-b:a", "64k", dest],
                   check=True)
    # fmt: on
    return dest


def probe(path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout)


def wait_for_states(c, expected: list[str]) -> list[str]:
    """The tasks' states once they are `expected` (the housekeeping thread gets there), else as they are."""
    for _ in range(100):
        if (states := [t["state"] for t in c.get("/api/v1/tasks").json()]) == expected:
            break
        time.sleep(0.05)
    assert states == expected
    return states


def lease(c, name="box"):
    r = c.post("/api/v1/leases", json={"client": name})
    return r.json() if r.status_code == 200 else r.status_code


def upload(c, lease_, text, **formats):
    meta = {
        "model": "m",
        "audio_seconds": 1.0,
        "processing_seconds": 0.5,
        "language": "en",
        "client": lease_["task_id"],
    }
    files = {"txt": ("t", f" {text}\n".encode()), **{k: ("f", v.encode()) for k, v in formats.items()}}
    r = c.post(f"/api/v1/leases/{lease_['token']}/result", data={"meta": json.dumps(meta)}, files=files)
    assert r.status_code == 200, r.text
    return r.json()


def part_vtt(text: str) -> str:
    return f"WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n {text}\n"


def part_json(text: str) -> str:
    entry = {"timestamps": {}, "offsets": {"from": 1000, "to": 2500}, "text": f" {text}"}
    return json.dumps({"result": {"language": "en"}, "transcription": [entry]})


def test_a_part_is_served_as_its_own_range_and_resumes_with_range(api, long_mp3):
    c = api(SPLIT_SECONDS=30, SCHEDULER="fifo")  # parts in time order: the first one first
    file = c.get("/api/v1/tasks").json()[0]
    assert file["state"] == "split" and file["duration_ms"] > 70_000
    L = lease(c)
    assert L["file_task_id"] == file["id"] and L["start_seconds"] == 0
    assert L["file_duration_seconds"] == file["duration_ms"] / 1000
    assert 20 <= L["end_seconds"] <= 40  # a pause near 30 s
    body = c.get(L["audio_url"]).content
    assert len(body) == L["size"] < long_mp3.stat().st_size and hashlib.sha256(body).hexdigest() == L["sha256"]
    rest = c.get(L["audio_url"], headers={"Range": "bytes=5000-"})
    assert rest.status_code == 206 and rest.content == body[5000:]
    cut = long_mp3.parent / "part.mp3"
    cut.write_bytes(body)
    assert abs(probe(cut) - L["end_seconds"]) < 0.1  # stream copy, to the frame


def test_every_format_is_stitched_on_the_file_timeline_with_who_did_which_part(api, long_mp3, tmp_path):
    c = api(SPLIT_SECONDS=30)
    leases = [lease(c, f"box{i}") for i in range(3)]
    assert lease(c) == 204
    parts = sorted(leases, key=lambda x: x["start_seconds"])
    for i, L in enumerate(parts):
        srt = f"1\n00:00:01,000 --> 00:00:02,500\n part {i}\n"
        upload(c, L, f"part {i}", vtt=part_vtt(f"part {i}"), srt=srt, json=part_json(f"part {i}"))
    out = tmp_path / "data/results/talks"
    assert sorted(p.name for p in out.iterdir()) == [f"long.{x}" for x in ("json", "meta.json", "srt", "txt", "vtt")]
    starts = [round(L["start_seconds"] * 1000) for L in parts]
    expect = [(s + 1000, s + 2500, f" part {i}") for i, s in enumerate(starts)]
    for fmt in ("vtt", "srt"):
        assert [(q.start_ms, q.end_ms, q.text) for q in cues((out / f"long.{fmt}").read_text())] == expect
    entries = json.loads((out / "long.json").read_text())["transcription"]
    assert [(e["offsets"]["from"], e["offsets"]["to"], e["text"]) for e in entries] == expect
    assert (out / "long.txt").read_text() == " part 0\n part 1\n part 2\n"
    meta = json.loads((out / "long.meta.json").read_text())
    assert [p["start_ms"] for p in meta["parts"]] == starts
    assert [p["client"] for p in meta["parts"]] == [f"box{leases.index(L)}" for L in parts]
    assert meta["clients"] == ["box0", "box1", "box2"] and meta["protocol"] == "stitched"
    assert not (tmp_path / "data/results/.parts" / meta["task_id"]).exists()  # parts' own results: gone
    assert c.get(f"/api/v1/tasks/{meta['task_id']}").json()["state"] == "done"


def test_legacy_clients_get_parts_and_their_vtt_is_moved_to_the_file_timeline(api, long_mp3, tmp_path):
    c = api(SPLIT_SECONDS=30, SCHEDULER="fifo")  # parts in time order
    got = []
    while (r := c.get("/task")).status_code == 200:
        got.append((r.headers["x-task-id"], r.content))
    assert len(got) == 3 and all(len(body) < long_mp3.stat().st_size for _, body in got)
    for n, (task_id, _) in enumerate(got):
        assert c.post("/result", json={"id": task_id, "vtt": part_vtt(f"legacy {n}")}).status_code == 200
    starts = [c.get(f"/api/v1/tasks/{t}").json()["start_ms"] for t, _ in got]
    vtt = (tmp_path / "data/results/talks/long.vtt").read_text()
    assert [(q.start_ms, q.text) for q in cues(vtt)] == [(s + 1000, f" legacy {n}") for n, s in enumerate(starts)]


def test_a_crash_while_stitching_leaves_no_half_set_and_the_stitch_resumes(api, long_mp3, tmp_path, monkeypatch):
    c = api(SPLIT_SECONDS=30)
    leases = sorted((lease(c, f"box{i}") for i in range(3)), key=lambda x: x["start_seconds"])
    for L in leases[:2]:
        upload(c, L, "x", vtt=part_vtt("x"))
    real = server.disk.results.write_atomic
    calls: list = []

    def crash_on_second(path, data):  # the stitch's second file
        if path.parent.name == "talks":
            calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(server.disk.results, "write_atomic", crash_on_second)
    upload(c, leases[2], "x", vtt=part_vtt("x"))  # accepted: the part's own result was written first
    out = tmp_path / "data/results/talks"
    assert not (out / "long.meta.json").exists()  # the set is incomplete, and says so by its absence
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    file_id = leases[0]["file_task_id"]
    assert c.get(f"/api/v1/tasks/{file_id}").json()["state"] == "split"
    monkeypatch.setattr(server.disk.results, "write_atomic", real)
    assert c.app.state.ctx.stitcher.ready() == 1  # what the housekeeping loop does after a restart
    assert (out / "long.meta.json").exists() and len(cues((out / "long.vtt").read_text())) == 3
    assert c.get(f"/api/v1/tasks/{file_id}").json()["state"] == "done"


def test_a_failed_part_fails_its_file_and_requeue_redoes_only_that_part(api, long_mp3, tmp_path):
    c = api(SPLIT_SECONDS=30, MAX_ATTEMPTS=1, ADMIN_TOKENS=ADMIN)
    c.headers["Authorization"] = f"Bearer {ADMIN}"
    leases = sorted((lease(c, f"box{i}") for i in range(3)), key=lambda x: x["start_seconds"])
    upload(c, leases[0], "x", vtt=part_vtt("x"))
    upload(c, leases[2], "x", vtt=part_vtt("x"))
    r = c.post(f"/api/v1/leases/{leases[1]['token']}/error", json={"message": "cannot decode", "retryable": False})
    assert r.json()["task_state"] == "failed"
    file_id = leases[0]["file_task_id"]
    file = c.get(f"/api/v1/tasks/{file_id}").json()
    assert file["state"] == "failed" and file["last_error"].endswith("failed: cannot decode")
    assert c.post("/api/v1/admin/requeue", json={"ids": [file_id]}).json() == {"requeued": [file_id]}
    again = c.post("/api/v1/leases", json={"client": "box"}).json()
    assert again["task_id"] == leases[1]["task_id"]  # only the failed part, the others stay done
    upload(c, {**again}, "x", vtt=part_vtt("x"))
    assert (tmp_path / "data/results/talks/long.meta.json").exists()


def test_a_replaced_file_is_cut_anew(api, long_mp3, shared):
    c = api(SPLIT_SECONDS=30, ADMIN_TOKENS=ADMIN)
    c.headers["Authorization"] = f"Bearer {ADMIN}"
    held = lease(c)
    shutil.copy(shared / "audio/jfk.mp3", long_mp3)  # 11 s now: one whole task
    assert c.post("/api/v1/admin/scan").json()["changed"] == 1
    assert c.post(f"/api/v1/leases/{held['token']}/heartbeat", json={}).status_code in (404, 409)
    for _ in range(100):
        if (L := lease(c, "other")) != 204:  # "box" itself is held to one task until it is timed
            break
    assert L["file_task_id"] is None and L["size"] == long_mp3.stat().st_size
    assert [t["state"] for t in c.get("/api/v1/tasks").json()] == ["leased"]


def test_split_seconds_zero_keeps_long_files_whole(api, long_mp3, tmp_path):
    c = api(SPLIT_SECONDS=0)
    L = lease(c)
    assert L["file_task_id"] is None and L["size"] == long_mp3.stat().st_size
    assert len(c.get("/api/v1/tasks").json()) == 1


def test_a_new_split_seconds_applies_to_files_not_yet_started(api, long_mp3, tmp_path):
    c = api(SPLIT_SECONDS=30)
    assert len(c.get("/api/v1/tasks").json()) == 4
    c.__exit__(None, None, None)
    c = api(SPLIT_SECONDS=60)  # a restart with another value: cut again, in two parts now
    assert wait_for_states(c, ["split", "queued", "queued"])  # the old cut undone, the file cut anew
    c.__exit__(None, None, None)
    c = api(SPLIT_SECONDS=0)
    assert wait_for_states(c, ["queued"])


def test_status_and_tasks_show_parts_done(api, long_mp3, tmp_path):
    c = api(SPLIT_SECONDS=30)
    upload(c, lease(c), "x", vtt=part_vtt("x"))
    cli = ServerProcess(tmp_path, SPLIT_SECONDS=30)
    assert "talks/long.mp3  1/3 parts done" in cli.cli("status").stdout
    lines = [line.split("\t") for line in cli.cli("tasks").stdout.splitlines()]
    assert lines[0][1:5] == ["talks/long.mp3", "1/3 done", "auto", "split"]
    assert lines[1][2].startswith("0:00:00-0:00:")


def test_while_validating_a_stitched_files_parts_keep_their_results_not_their_audio(tmp_path):
    """A part a trusted host delivered unchecked may be checked again later (ledger/validation.py)."""
    from server.disk.layout import Layout
    from server.disk.results import ResultLayout
    from server.parts.stitch import Stitcher
    from tests.helpers import make_ledger
    from tests.unit.test_parts_ledger import PLAN, finish, split_file

    ledger = make_ledger(f"sqlite:///{tmp_path / 'db'}")
    layout = Layout(tmp_path / "audio", tmp_path / "data", ResultLayout(tmp_path / "results"))
    fid, parts = split_file(ledger, plan=PLAN[:2])
    folder = layout.part_folder(fid)
    for part_id in parts:
        finish(ledger)
        ResultLayout(layout.parts_dir).write(f"{fid}/{part_id}", {"txt": b" words\n"}, {"language": "en"})
        (folder / f"{part_id}-1000-1000000.mp3").write_bytes(b"cut audio")
    assert Stitcher(ledger, layout, keep_parts=True).stitch(fid)
    assert (tmp_path / "results/long.txt").read_text() == "words\nwords\n"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{p}.{x}" for p in parts for x in ("meta.json", "txt"))
