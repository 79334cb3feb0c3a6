"""The fleet as it is, with real clients, server, ffmpeg and whisper-cli: a mixed library on an
English-only fast host and a slow multilingual one, a policy wait that --until-idle sits out, a host
not timed yet held to one task at a time, and recordings that are not speech (silence, a tone)
transcribed rather than failed as loops."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import client_env, copy_audio, run_client

TINY_EN = "models/ggml-tiny.en.bin"
BASE = "models/ggml-base-q5_1.bin"


def bench(env: dict[str, str], model: Path, rtf: float) -> dict[str, str]:
    """What `stt-client bench` leaves behind, so the server's first guess of its speed is `rtf`."""
    work = Path(env["WORK_DIR"])
    work.mkdir(parents=True, exist_ok=True)
    (work / "bench.json").write_text(json.dumps({"model": model.name, "rtf": rtf}))
    return env


def events(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "data/events.log").read_text().splitlines()]


def start_client(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", *args],
        env=env,
        cwd=Path(env["WORK_DIR"]).parent,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )


def test_a_slow_multilingual_client_and_a_fast_english_only_client_both_finish_a_mixed_library(
    shared, whisper_cli, server_process, tmp_path
):
    english = {f"en/talk-{i}.mp3": "jfk.mp3" for i in range(4)}
    copy_audio(shared, tmp_path / "audio", {**english, "es/tren.mp3": "tren-es.mp3"})
    srv = server_process().start()
    fast_model, slow_model = shared / TINY_EN, shared / BASE
    fast = bench(client_env(tmp_path, srv.url, fast_model, "gpu-en"), fast_model, 40.0)
    slow = bench(client_env(tmp_path, srv.url, slow_model, "laptop"), slow_model, 2.0)
    procs = [
        start_client(env, tmp_path / f"{name}.log", "--until-idle") for name, env in (("gpu", fast), ("lap", slow))
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, (tmp_path / "gpu-en.log").read_text() + (tmp_path / "laptop.log").read_text()

    stats = requests.get(f"{srv.url}/api/v1/stats").json()
    assert stats["counts"]["done"] == 5 and stats["counts"]["queued"] == stats["counts"]["failed"] == 0
    tasks = {t["id"]: t for t in requests.get(f"{srv.url}/api/v1/tasks").json()}
    granted = [(tasks[e["task"]]["language"], e["client"]) for e in events(tmp_path) if e["event"] == "granted"]
    assert ("es", "laptop") in granted and ("es", "gpu-en") not in granted  # only the laptop may take it
    assert {lang for lang, client in granted if client == "gpu-en"} == {"en"}
    assert "tren" in (tmp_path / "data/results/es/tren.txt").read_text().lower()


def test_until_idle_sits_out_a_policy_wait_and_stops_only_when_nothing_is_left(
    shared, whisper_cli, server_process, tmp_path
):
    srv = server_process().start()
    gpu = {"backend": "cuda", "model": "ggml-tiny.en.bin", "english_only": True, "rtf": 500.0}
    r = requests.post(f"{srv.url}/api/v1/leases", json={"client": "gpu", "capabilities": gpu})
    assert r.status_code == 204 and "Retry-After" not in r.headers  # nothing queued: a plain 204
    copy_audio(shared, tmp_path / "audio", {"en/jfk.mp3": "jfk.mp3"})
    assert "added 1" in srv.cli("scan").stdout

    # A slow host asks while the idle GPU, which may take the file too, would finish it far sooner.
    slow = {"backend": "cpu", "model": "ggml-base-q5_1.bin", "rtf": 2.0}
    r = requests.post(f"{srv.url}/api/v1/leases", json={"client": "probe", "capabilities": slow})
    assert r.status_code == 204 and r.headers["X-Wait-Reason"] == "faster-host"
    assert 1 <= int(r.headers["Retry-After"]) <= 60

    model = shared / BASE
    env = bench(client_env(tmp_path, srv.url, model, "laptop"), model, 2.0)
    client = start_client(env, tmp_path / "laptop.log", "--until-idle")
    log = tmp_path / "laptop.log"
    deadline = time.monotonic() + 60
    while "wait (faster-host)" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "wait (faster-host)" in log.read_text(), log.read_text()
    assert client.poll() is None  # a wait is not "idle": it is still there

    lease = requests.post(f"{srv.url}/api/v1/leases", json={"client": "gpu", "capabilities": gpu}).json()
    files = {"txt": ("t.txt", b"ask not\n")}
    meta = json.dumps({"model": "ggml-tiny.en.bin", "backend": "cuda"})
    assert requests.post(f"{srv.url}{lease['audio_url'].rsplit('/', 1)[0]}/result", data={"meta": meta}, files=files).ok
    assert client.wait(timeout=120) == 0, log.read_text()
    assert "no task available" in log.read_text()
    assert requests.get(f"{srv.url}/api/v1/stats").json()["counts"]["done"] == 1


def test_five_minutes_of_silence_and_of_a_tone_are_transcribed_not_failed(
    shared, whisper_cli, server_process, tmp_path
):
    audio = tmp_path / "audio"
    audio.mkdir()
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg
    # The tone lossless: MP3's artefacts on a pure tone keep whisper-cli's fallbacks going 2.5 times
    # as long (210 s against 84 s here), time that tests nothing more.
    for name, source in (("silence.mp3", "anullsrc=r=16000:cl=mono"), ("tone.flac", "sine=frequency=440:r=16000")):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", source, "-t", "300", audio / name], check=True)
    srv = server_process(MAX_ATTEMPTS=1).start()
    env = client_env(tmp_path, srv.url, shared / TINY_EN, "fedora")
    r = run_client(env, "--until-idle")
    assert r.returncode == 0, r.stderr
    counts = requests.get(f"{srv.url}/api/v1/stats").json()["counts"]
    assert counts["done"] == 2 and counts["failed"] == 0, r.stderr
    for name in ("silence", "tone"):
        meta = json.loads((tmp_path / f"data/results/{name}.meta.json").read_text())
        assert "loop_retry" not in meta, meta  # the non-speech markers did not look like a loop
        assert (tmp_path / f"data/results/{name}.vtt").read_text().startswith("WEBVTT")


def test_a_host_not_timed_yet_waits_for_its_prefetch_until_its_first_result(shared, server_process, tmp_path):
    """Its speed is its benchmark's word until the server times a result: one task at a time."""
    srv = server_process().start()
    copy_audio(shared, tmp_path / "audio", {f"jfk-{i}.mp3": "jfk.mp3" for i in range(4)})
    assert "added 4" in srv.cli("scan").stdout
    caps = {"backend": "cpu", "model": "ggml-base-q5_1.bin", "rtf": 50.0}

    def ask() -> requests.Response:
        return requests.post(f"{srv.url}/api/v1/leases", json={"client": "new", "capabilities": caps})

    first = ask()
    assert first.status_code == 200
    r = ask()  # its prefetch, while the first task runs
    assert r.status_code == 204 and r.headers["X-Wait-Reason"] == "measuring"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    files = {"txt": ("t.txt", b"ask not\n")}
    meta = json.dumps({"model": caps["model"], "backend": "cpu"})
    done = requests.post(f"{srv.url}/api/v1/leases/{first.json()['token']}/result", data={"meta": meta}, files=files)
    assert done.json()["status"] == "accepted"
    assert ask().status_code == 200  # its next task: it is free the moment it delivers
    deadline = time.monotonic() + 30
    while (r := ask()).status_code == 204 and time.monotonic() < deadline:  # till the fleet's next read
        assert r.headers["X-Wait-Reason"] == "measuring"
        time.sleep(0.2)
    assert r.status_code == 200  # timed now: it prefetches
