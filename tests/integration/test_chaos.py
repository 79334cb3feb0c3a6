"""Chaos: the real server and four real stt-client processes (real whisper-cli, tiny.en) work through
30 short clips and 2 corrupt files while clients are SIGKILLed and restarted (outbox kept), the
server is SIGKILLed and restarted twice, and a TCP proxy between them drops connections at random.

At the end: every clip has exactly one complete result set whose text equals a clean single-client
run of the same clip; each corrupt file is failed with its error; no lease is held; every outbox is
empty; the server never answered 5xx. CHAOS_SEED picks another run."""

from __future__ import annotations

import collections
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import client_env
from tests.proxy import FlakyProxy

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("CHAOS_SEED", "7"))
CLIENTS = 4
FORMATS = ("txt", "vtt", "srt", "json", "meta.json")


def make_clips(shared: Path, audio: Path, rng: random.Random) -> list[str]:
    """30 clips of 3-10 s cut with ffmpeg from the shared speech, plus 2 corrupt files."""
    clips = []
    for i in range(30):
        src, length = ("millbrook.mp3", 62.0) if i < 25 else ("jfk.mp3", 11.0)
        dur = rng.uniform(3, min(10, length - 1))
        start = rng.uniform(0, length - dur)
        rel = f"clips/c{i:02}.mp3"
        (audio / "clips").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-ss",
                f"{start:.2f}",
                "-t",
                f"{dur:.2f}",
                "-i",
                str(shared / "audio" / src),
                "-ac",
                "1",
                "-b:a",
                "64k",
                str(audio / rel),
            ],
            check=True,
        )
        clips.append(rel)
    (audio / "bad").mkdir()
    (audio / "bad" / "garbage.mp3").write_bytes((shared / "audio" / "corrupt-garbage.mp3").read_bytes())
    (audio / "bad" / "noise.mp3").write_bytes(rng.randbytes(40_000))
    return clips


def phase(work: Path) -> str:
    """What a client was doing, judged from its work folder."""
    if any(work.glob("outbox/*-*")):
        return "uploading"
    if any(work.glob("*/input.wav")):
        return "transcribing"
    if any(work.glob("*/src/*")):
        return "downloading"
    return "idle"


def test_chaos(shared, whisper_cli, server_process, tmp_path, report):
    rng = random.Random(SEED)
    model = shared / "models" / "ggml-tiny.en.bin"
    clips = make_clips(shared, tmp_path / "audio", rng)

    # The reference: the same pipeline, one clean local run per clip.
    ref_dir = tmp_path / "reference"
    env = {**os.environ, "WHISPER_CLI": str(whisper_cli), "WHISPER_MODEL": str(model), "THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "client.cli",
            "transcribe",
            *[str(tmp_path / "audio" / c) for c in clips],
            "--out",
            str(ref_dir),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )

    srv = server_process(LEASE_SECONDS=6, MAX_ATTEMPTS=8).start()
    # A slow line (64 kB/s, like a volunteer's uplink) so kills can land mid-download and mid-upload.
    proxy = FlakyProxy(srv.port, drop_rate=0.1, seed=SEED, bytes_per_second=64_000)
    clients: dict[str, subprocess.Popen] = {}
    envs = {f"c{n}": client_env(tmp_path, proxy.url, model, f"c{n}", THREADS=1) for n in range(CLIENTS)}

    def start(name: str) -> None:
        log = open(tmp_path / f"{name}.log", "ab")
        clients[name] = subprocess.Popen(
            [sys.executable, "-m", "client.cli", "run"], env=envs[name], stdout=log, stderr=subprocess.STDOUT
        )

    def outboxes_empty() -> bool:
        return not any(any(p.iterdir()) for p in tmp_path.glob("work-*/outbox") if p.is_dir())

    counts: collections.Counter[str] = collections.Counter()

    def kill_and_restart(name: str) -> None:
        counts[f"client SIGKILLs while {phase(tmp_path / f'work-{name}')}"] += 1
        clients[name].kill()
        clients[name].wait()
        time.sleep(rng.uniform(0, 1.0))
        start(name)

    def pause(seconds: float) -> None:
        """Wait, but pounce on a client caught between finishing a task and its upload (3 times)."""
        end = time.time() + seconds
        while time.time() < end:
            if counts["client SIGKILLs while uploading"] < 3:
                uploading = [n for n in sorted(clients) if phase(tmp_path / f"work-{n}") == "uploading"]
                if uploading:
                    kill_and_restart(uploading[0])
            time.sleep(0.02)

    server_kills = sorted(rng.uniform(8, 45) for _ in range(2))
    for name in envs:
        start(name)
    t0 = time.time()
    try:
        while time.time() - t0 < 240:
            pause(rng.uniform(1.0, 3.0))
            if server_kills and time.time() - t0 > server_kills[0]:
                server_kills.pop(0)
                srv.kill()
                counts["server SIGKILLs"] += 1
                time.sleep(rng.choice([1.0, 8.0]))  # 8 s outlives a 6 s lease: expiry, re-issue, late results
                srv.start()
            elif rng.random() < 0.7:
                busy = [n for n in sorted(clients) if phase(tmp_path / f"work-{n}") in ("downloading", "uploading")]
                kill_and_restart(rng.choice(busy if busy and rng.random() < 0.5 else sorted(clients)))
            stats = requests.get(f"{srv.url}/api/v1/stats", timeout=10).json()
            c = stats["counts"]
            if not server_kills and c["queued"] == c["leased"] == 0 and outboxes_empty():
                break
        elapsed = time.time() - t0
    finally:
        time.sleep(2)  # a client restarted a moment ago is still importing, without its signal handler
        for p in clients.values():
            p.terminate()  # SIGTERM: finish, upload, exit 0
        exit_codes = [p.wait(60) for p in clients.values()]
        proxy.close()

    # --- nothing lost, nothing done twice -----------------------------------------------------
    stats = requests.get(f"{srv.url}/api/v1/stats").json()
    assert {state: n for state, n in stats["counts"].items() if n} == {"done": 30, "failed": 2}, stats
    assert stats["active_leases"] == 0
    assert exit_codes == [0] * CLIENTS
    results = tmp_path / "data" / "results"
    for rel in clips:
        stem = results / rel[: -len(".mp3")]
        for fmt in FORMATS:
            assert Path(f"{stem}.{fmt}").stat().st_size > 0, (rel, fmt)
        expected = (ref_dir / Path(rel).with_suffix(".txt").name).read_text()
        assert Path(f"{stem}.txt").read_text() == expected, rel
    assert sorted(p.name for p in results.rglob("*") if p.is_file() and p.name.startswith(".")) == []
    assert len(list(results.rglob("*.meta.json"))) == 30  # one set per clip, nothing for the corrupt files
    failed = {
        t["path"]: t["last_error"] for t in requests.get(f"{srv.url}/api/v1/tasks", params={"state": "failed"}).json()
    }
    assert sorted(failed) == ["bad/garbage.mp3", "bad/noise.mp3"]
    assert all("cannot read" in e or "cannot decode" in e for e in failed.values()), failed
    assert outboxes_empty() and not list(tmp_path.glob("work-*/outbox/rejected/*"))
    assert proxy.server_errors == 0, "the server answered 5xx"
    assert "Traceback" not in (tmp_path / "server.out").read_text()

    # --- what happened ----------------------------------------------------------------------------
    db = sqlite3.connect(tmp_path / "data" / "batch-stt.db")
    reissued = db.execute(
        "select count(*) from attempt a where exists (select 1 from attempt b where "
        "b.task_id = a.task_id and b.id < a.id)"
    ).fetchone()[0]
    expired = db.execute("select count(*) from attempt where state = 'expired'").fetchone()[0]
    events = [json.loads(line) for line in (tmp_path / "data" / "events.log").read_text().splitlines()]
    late = sum(1 for e in events if e["event"] == "completed" and e.get("late"))
    duplicates = sum(1 for e in events if e["event"] == "duplicate")
    figures = {
        **counts,
        "dropped connections": proxy.dropped,
        "tasks re-issued": reissued,
        "leases expired": expired,
        "late results accepted": late,
        "duplicate results ignored": duplicates,
        "seconds": round(elapsed),
    }
    report("chaos: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.items())))
    assert counts["server SIGKILLs"] == 2 and sum(v for k, v in counts.items() if k.startswith("client")) >= 5
