"""The daemon's promises around stopping, with the real client, server and whisper-cli:
a lost lease stops whisper-cli at once; SIGTERM finishes the task first; a second signal hands it back."""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest
import requests

from tests.helpers import copy_audio, start_transcribing

pytestmark = pytest.mark.slow


def start_client(tmp_path, srv, shared, *args):
    proc = start_transcribing(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "sig", *args)
    time.sleep(0.5)
    return proc


def whisper_children(proc) -> list:
    return [c for c in psutil.Process(proc.pid).children(recursive=True) if "whisper" in c.name()]


def test_lost_lease_kills_whisper_and_drops_the_task(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"millbrook.mp3": "millbrook.mp3"})
    srv = server_process(LEASE_SECONDS=6, REPLICA_BUDGET=1).start()  # heartbeats every 1.5 s
    model = shared / "models/ggml-tiny.en.bin"
    (tmp_path / "work-sig").mkdir()  # its saved benchmark says it is slow: a replica is worth it
    (tmp_path / "work-sig" / "bench.json").write_text(json.dumps({"model": model.name, "rtf": 0.2}))
    client = start_client(tmp_path, srv, shared, "--once")
    whisper = whisper_children(client)
    assert whisper
    # A faster host copies the task and finishes it first: the holder's lease is superseded.
    caps = {"backend": "cuda", "model": model.name, "rtf": 50.0}
    copy = requests.post(f"{srv.url}/api/v1/leases", json={"client": "gpu", "capabilities": caps}).json()
    assert copy["replica"] is True
    files = {"txt": ("t.txt", b"first\n"), "vtt": ("v.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nfirst\n")}
    meta = json.dumps({"model": model.name, "backend": "cuda"})
    done = requests.post(f"{srv.url}/api/v1/leases/{copy['token']}/result", data={"meta": meta}, files=files)
    assert done.json()["status"] == "accepted"
    out, _ = client.communicate(timeout=30)
    assert client.returncode == 0
    assert "taken back by the server; dropped" in out
    assert (tmp_path / "data/results/millbrook.txt").read_text() == "first\n"  # not overwritten
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in whisper)  # killed, not orphaned


def test_sigterm_finishes_the_task_then_exits_handing_back_the_prefetched_one(
    shared, whisper_cli, server_process, tmp_path
):
    copy_audio(shared, tmp_path / "audio", {"millbrook.mp3": "millbrook.mp3", "jfk.mp3": "jfk.mp3"})
    srv = server_process(SCHEDULER="fifo").start()  # the speed-aware one lets no host prefetch before it is timed
    client = start_client(tmp_path, srv, shared)
    deadline = time.time() + 30
    while [t["state"] for t in requests.get(f"{srv.url}/api/v1/tasks").json()] != ["leased", "leased"]:
        assert time.time() < deadline, "the next task was not prefetched"
        time.sleep(0.05)
    client.send_signal(signal.SIGTERM)
    out, _ = client.communicate(timeout=120)
    assert client.returncode == 0, out
    tasks = sorted((t["state"], t["attempts"]) for t in requests.get(f"{srv.url}/api/v1/tasks").json())
    # The current task finished and uploaded; the prefetched one went back unused, no attempt spent.
    assert tasks == [("done", 1), ("queued", 0)], out
    assert "handed back" in out


def test_second_signal_aborts_and_hands_the_task_back(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"millbrook.mp3": "millbrook.mp3"})
    srv = server_process().start()
    client = start_client(tmp_path, srv, shared)
    client.send_signal(signal.SIGINT)
    time.sleep(0.3)
    client.send_signal(signal.SIGINT)
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 130, out
    assert "handed back" in out
    [task] = requests.get(f"{srv.url}/api/v1/tasks").json()
    assert (task["state"], task["attempts"]) == ("queued", 0)  # released: no attempt used up
