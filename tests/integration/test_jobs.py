"""Transcription as a service over HTTP, with a real server, a real client and real whisper-cli."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import requests

from server.ops.notify import sign
from tests.helpers import REPO, client_env, copy_audio, post_endless_multipart, run_client, start_transcribing
from tests.receiver import Receiver


def submit(url: str, path, **fields) -> requests.Response:
    with open(path, "rb") as f:
        return requests.post(f"{url}/api/v1/jobs", files={"file": (path.name, f)}, data=fields, timeout=60)


def test_a_submitted_file_comes_back_in_every_format(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"backlog.mp3": "millbrook.mp3"})
    hook = Receiver().__enter__()
    # The receiver is on this machine: a private address the operator allows explicitly.
    srv = server_process(WEBHOOK_SECRET="s" * 20, CALLBACK_ALLOWED_HOSTS="127.0.0.1").start()
    r = submit(srv.url, shared / "audio" / "jfk.mp3", language="en", callback_url=hook.url + "/done")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["status_url"].endswith(f"/api/v1/jobs/{job['id']}")
    assert requests.get(f"{job['status_url']}/result?format=srt", timeout=10).status_code == 409

    # Priority over the backlog: the next lease is the job, though the backlog was there first.
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "laptop")
    assert run_client(env, "--max-tasks", "1").returncode == 0
    status = requests.get(job["status_url"], timeout=10).json()
    assert (status["state"], status["progress"], status["detected_language"]) == ("done", 100.0, "en")

    def result(fmt: str) -> str:
        r = requests.get(f"{job['status_url']}/result", params={"format": fmt}, timeout=10)
        assert r.status_code == 200, (fmt, r.text)
        return r.text

    assert "fellow Americans" in result("txt")
    assert result("vtt").startswith("WEBVTT") and "fellow Americans" in result("vtt")
    assert result("srt").startswith("1\n00:00:00,000 --> ")
    segments = json.loads(result("json"))["transcription"]
    words = [w["word"] for s in segments for w in s["words"]]
    assert "fellow" in words and "Americans," in words  # word timings
    md = result("md")
    assert md.startswith("# jfk\n\n**[00:00:00]** ") and "ask what you can do for your country" in md
    (called,) = hook.wait_for(1)  # the callback, once, signed with the job's own secret
    hook.__exit__()
    body = called.json()
    assert called.path == "/done" and body == {
        "event": "job.ended",
        "id": job["id"],
        "state": "done",
        "error": None,
        "ts": body["ts"],
    }
    assert abs(body["ts"] - time.time()) < 600
    assert len(job["callback_secret"]) == 64 and job["callback_secret"] != "s" * 20
    assert called.headers["X-Batch-STT-Signature"] == sign(job["callback_secret"], called.body)
    assert "callback_secret" not in requests.get(job["status_url"], timeout=10).json() or (
        requests.get(job["status_url"], timeout=10).json()["callback_secret"] is None
    )  # given once, at submit
    backlog = [t for t in requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json() if t["path"] == "backlog.mp3"]
    assert backlog[0]["state"] == "queued"  # still waiting: the job went first

    assert requests.delete(job["status_url"], timeout=10).status_code == 204
    assert requests.get(job["status_url"], timeout=10).status_code == 404
    assert not (tmp_path / "data" / "jobs" / job["id"]).exists()


def test_uploads_that_are_not_audio_or_too_big_are_refused(shared, server_process, tmp_path):
    srv = server_process(MAX_UPLOAD_BYTES=5_000_000).start()
    text = tmp_path / "notes.mp3"
    text.write_text("these are not the sounds you are looking for\n" * 100)
    r = submit(srv.url, text)
    assert r.status_code == 415 and "ffprobe cannot read notes.mp3" in r.json()["detail"]
    assert str(tmp_path) not in r.json()["detail"] and "source" not in r.json()["detail"]  # no server path
    assert submit(srv.url, shared / "audio" / "jfk.mp3", language="english").status_code == 422
    assert submit(srv.url, shared / "audio" / "jfk.mp3", model="huge").status_code == 422
    r = submit(srv.url, shared / "audio" / "jfk.mp3", speakers="diarize")
    assert r.status_code == 422 and "speakers must be one of off, streams, channels, auto" in r.json()["detail"]
    assert list((tmp_path / "data" / "jobs").iterdir()) == []  # nothing kept
    assert requests.get(f"{srv.url}/api/v1/jobs", timeout=10).json() == []

    server = psutil.Process(srv.proc.pid)
    before = server.memory_info().rss

    assert post_endless_multipart(f"{srv.url}/api/v1/jobs", "file") in (413, None)  # 200 MB, kept nowhere
    assert (server.memory_info().rss - before) < 30_000_000
    assert list((tmp_path / "data" / "jobs").iterdir()) == []


def test_model_tier_and_cancel(shared, whisper_cli, server_process, tmp_path):
    srv = server_process(LEASE_SECONDS=5).start()  # heartbeats every 1.25 s: the cancel is heard at once
    medium = submit(srv.url, shared / "audio" / "jfk.mp3", model="medium").json()
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "tiny-laptop")
    r = run_client(env, "--until-idle")
    assert "no task available" in r.stderr and "worked on 0 task" in r.stderr  # tiny never gets a medium job
    assert requests.get(medium["status_url"], timeout=10).json()["state"] == "queued"

    long = submit(srv.url, shared / "audio" / "millbrook.mp3").json()
    proc = start_transcribing(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "canceller", "--once")
    cancelled = requests.post(f"{long['status_url']}/cancel", timeout=10).json()
    assert cancelled["state"] == "cancelled"
    out, _ = proc.communicate(timeout=120)
    assert "taken back by the server" in out or "lease lost" in out, out
    assert requests.get(long["status_url"], timeout=10).json()["state"] == "cancelled"
    assert requests.get(f"{long['status_url']}/result", timeout=10).status_code == 409


def test_jobs_survive_a_restart(shared, server_process, tmp_path):
    srv = server_process().start()
    job = submit(srv.url, shared / "audio" / "jfk.mp3").json()
    srv.stop()
    srv.start()
    deadline = time.time() + 10
    while (state := requests.get(job["status_url"], timeout=10).json()["state"]) != "queued" and time.time() < deadline:
        time.sleep(0.1)
    assert state == "queued"
    assert [j["id"] for j in requests.get(f"{srv.url}/api/v1/jobs?state=queued", timeout=10).json()] == [job["id"]]
    # It goes out after the restart, to a host that names its model; never to a legacy client (#21).
    assert requests.get(f"{srv.url}/task", timeout=10).status_code == 204
    lease = {"client": "laptop", "capabilities": {"model": "ggml-tiny.en.bin"}}
    assert requests.post(f"{srv.url}/api/v1/leases", json=lease, timeout=10).json()["task_id"] == job["id"]


def test_stt_client_submit_waits_and_writes_the_transcript(shared, whisper_cli, server_process, tmp_path):
    srv = server_process().start()
    volunteer = subprocess.Popen(  # keeps asking until it has done one task
        [sys.executable, "-m", "client.cli", "run", "--max-tasks", "1"],
        env=client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "volunteer"),
        cwd=tmp_path,
    )
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "submitter")
    audio = tmp_path / "talk.mp3"
    audio.write_bytes((shared / "audio" / "jfk.mp3").read_bytes())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "client.cli", "submit", str(audio), "--format", "srt", "--wait", "--out", str(out)]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    volunteer.wait(timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    srt = (out / "talk.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> ") and "fellow Americans" in srt
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio")
    command = [sys.executable, "-m", "client.cli", "submit", str(bad)]
    refused = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "HTTP 415" in refused.stdout


def test_a_long_upload_is_cut_into_parts_and_stitched(shared, whisper_cli, server_process, tmp_path):
    srv = server_process(SPLIT_SECONDS=30).start()
    job = submit(srv.url, shared / "audio" / "millbrook.mp3", language="en").json()  # 62 s: cut in pauses
    deadline = time.time() + 30
    while len(parts := [t for t in srv_tasks(srv) if t["parent_id"] == job["id"]]) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(parts) >= 2 and all(p["priority"] == 10 for p in parts)  # the job's priority goes with them
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "laptop")
    assert run_client(env, "--max-tasks", "1").returncode == 0
    assert requests.get(job["status_url"], timeout=10).json()["progress"] == round(100 / len(parts), 1)  # one part
    assert run_client(env, "--until-idle").returncode == 0
    deadline = time.time() + 30  # the parts are stitched just after the last result is answered
    while requests.get(job["status_url"], timeout=10).json()["state"] != "done":
        assert time.time() < deadline
        time.sleep(0.2)
    segments = json.loads(requests.get(f"{job['status_url']}/result?format=json", timeout=10).text)["transcription"]
    starts = [w["offsets"]["from"] for s in segments for w in s["words"]]
    assert starts == sorted(starts) and starts[-1] > 30_000  # the second part's words, on the file's timeline
    assert (tmp_path / "data" / "results" / ".parts" / job["id"]).exists() is False  # stitched, cleaned up
    assert requests.delete(job["status_url"], timeout=10).status_code == 204
    assert srv_tasks(srv) == []


def srv_tasks(srv) -> list[dict]:
    return requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json()


def test_upload_names_the_file_system_refuses_or_the_results_would_take(shared, whisper_cli, server_process, tmp_path):
    srv = server_process().start()
    jfk = (shared / "audio" / "jfk.mp3").read_bytes()
    long_name = "会议记录" * 21 + ".mp3"  # 84 CJK characters: 252 bytes, over the limit with the extension
    jobs = {}
    for name in (long_name, "result.vtt"):  # an MP3 named like the job's own transcript
        r = requests.post(f"{srv.url}/api/v1/jobs", files={"file": (name, jfk)}, data={"language": "en"}, timeout=60)
        assert r.status_code == 202, r.text
        jobs[name] = r.json()
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "laptop")
    assert run_client(env, "--until-idle").returncode == 0
    shown = {}
    for name, job in jobs.items():
        status = requests.get(job["status_url"], timeout=10).json()
        assert status["state"] == "done", status
        shown[name] = status["filename"]  # the name as stored
        vtt = requests.get(f"{job['status_url']}/result", params={"format": "vtt"}, timeout=10).text
        assert vtt.startswith("WEBVTT") and "fellow Americans" in vtt
    assert shown[long_name].endswith(".mp3") and len(shown[long_name].encode()) <= 200
    assert long_name.startswith(shown[long_name][:-4])  # cut at a character, the extension kept
    assert shown["result.vtt"] == "result.vtt"  # the name is metadata: kept as it came
    stored = [p for p in (tmp_path / "data" / "jobs" / jobs["result.vtt"]["id"]).iterdir() if p.read_bytes() == jfk]
    assert [p.name for p in stored] == ["source.vtt"]  # stored as source<ext>: it outlived its own result
    stored = [p.name for p in (tmp_path / "data" / "jobs" / jobs[long_name]["id"]).iterdir() if p.read_bytes() == jfk]
    assert stored == ["source.mp3"]
