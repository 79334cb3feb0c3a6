#!/usr/bin/env python3
"""Client throughput: the real daemon on N short real speech files back to back, against bare
whisper-cli on the same files back to back (the MP3s, which whisper-cli decodes itself; and, a
stricter ceiling, WAVs made beforehand and not timed), same model and threads, same run.
The daemon runs with PREFETCH=1 (the default) and PREFETCH=0; the ratio is bare / daemon, medians
of interleaved rounds; the daemon's time runs from its first lease to its last result accepted (the
whole run, Python's start and exit included, is printed beside it). The server shares the cores
here, niced, as if it ran elsewhere.

    python scripts/bench_client.py [--files 12] [--threads 2] [--rounds 3] [--model ../shared/models/ggml-tiny.en.bin]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import SHARED, WHISPER_CLI, ServerProcess, client_env  # noqa: E402

SPEECH = ("jfk.mp3", "millbrook.mp3", "tren-es.mp3")


def library(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        name = SPEECH[i % len(SPEECH)]
        dest = folder / f"{i:03}-{name}"
        shutil.copyfile(SHARED / "audio" / name, dest)
        out.append(dest)
    return out


def bare(files: list[Path], work: Path, model: Path, threads: int, pre_decoded: bool) -> float:
    """whisper-cli alone, back to back: on the MP3s themselves (whisper-cli decodes MP3: the issue's
    baseline), or (pre_decoded) on WAVs made beforehand and not timed, a stricter ceiling."""
    inputs = list(files)
    if pre_decoded:
        inputs = [work / f"{f.stem}.wav" for f in files]
        for f, wav in zip(files, inputs, strict=True):
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", f, "-ar", "16000", "-ac", "1", wav], check=True)
    started = time.monotonic()
    for f in inputs:
        # fmt: off
        subprocess.run([WHISPER_CLI, "-m", model, "-f", f, "-t", str(threads), "-l", "en", "-otxt", "-ovtt", "-osrt",
                        "-ojf", "-of", work / f.stem], check=True, capture_output=True)
        # fmt: on
    return time.monotonic() - started


def yield_cpu(pid: int) -> None:
    """The server shares this machine's cores only in the benchmark: nice all its threads (Linux)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(tid), 10)


def daemon(root: Path, n: int, model: Path, threads: int, prefetch: int) -> tuple[float, float]:
    """(first lease to last result, as the server logged them; the process's whole run). The first
    is the steady state a long-lived daemon lives in; the second adds Python's start and exit."""
    library(root / "audio", n)
    server = ServerProcess(root, DEFAULT_LANGUAGE="en").start()
    assert server.proc is not None
    yield_cpu(server.proc.pid)
    try:
        env = client_env(root, server.url, model, "bench", THREADS=threads, PREFETCH=prefetch)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "client.cli", "run", "--until-idle"],
            env=env,
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        whole = time.monotonic() - started
        done = requests.get(server.url + "/api/v1/stats").json()["counts"]["done"]
        if done != n:
            raise SystemExit(f"only {done} of {n} files were done")
    finally:
        server.stop()
    events = [json.loads(line) for line in (root / "data" / "events.log").read_text().splitlines()]
    granted = min(e["ts"] for e in events if e["event"] == "granted")
    completed = max(e["ts"] for e in events if e["event"] == "completed")
    return completed - granted, whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "ggml-tiny.en.bin")
    args = ap.parse_args()
    walls: dict[str, list[float]] = {"bare": [], "bare (WAV)": [], "PREFETCH=1": [], "PREFETCH=0": []}
    wholes: dict[str, list[float]] = {"PREFETCH=1": [], "PREFETCH=0": []}
    for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits every variant alike
        with tempfile.TemporaryDirectory(prefix="stt-bench-client-") as tmp:
            root = Path(tmp)
            files = library(root / "files", args.files)
            (root / "bare").mkdir()
            walls["bare"].append(bare(files, root / "bare", args.model, args.threads, pre_decoded=False))
            walls["bare (WAV)"].append(bare(files, root / "bare", args.model, args.threads, pre_decoded=True))
            for prefetch in (1, 0):
                steady, whole = daemon(root / f"p{prefetch}", args.files, args.model, args.threads, prefetch)
                walls[f"PREFETCH={prefetch}"].append(steady)
                wholes[f"PREFETCH={prefetch}"].append(whole)
    print(f"{args.files} files, {args.model.name}, {args.threads} threads, median of {args.rounds} rounds")
    print("  daemon: first lease to last result accepted; [whole run, with Python's start and exit]")
    base, ceiling = statistics.median(walls["bare"]), statistics.median(walls["bare (WAV)"])
    for name, runs in walls.items():
        wall = statistics.median(runs)
        each = " ".join(f"{w:.1f}" for w in runs)
        overall = f"[{base / statistics.median(wholes[name]):.3f}]" if name in wholes else ""
        print(
            f"  {name:<11} {wall:6.1f} s   bare / this = {base / wall:.3f} {overall:>8}"
            f"   bare (WAV) / this = {ceiling / wall:.3f}  ({each})"
        )


if __name__ == "__main__":
    main()
