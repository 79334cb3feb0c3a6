#!/usr/bin/env python3
"""Client throughput: the real daemon on N short real speech files back to back, against bare
whisper-cli on the same files (already WAV) back to back, same model and threads, same run.
The daemon runs with PREFETCH=1 (the default) and PREFETCH=0; the ratio is bare / daemon.

    python scripts/bench_client.py [--files 12] [--threads 2] [--model ../shared/models/ggml-tiny.en.bin]
"""

from __future__ import annotations

import argparse
import shutil
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


def bare(files: list[Path], work: Path, model: Path, threads: int) -> float:
    """whisper-cli alone, back to back, on WAVs made beforehand (not timed): the ceiling."""
    wavs = []
    for f in files:
        wav = work / f"{f.stem}.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", f, "-ar", "16000", "-ac", "1", wav], check=True)
        wavs.append(wav)
    started = time.monotonic()
    for wav in wavs:
        # fmt: off
        subprocess.run([WHISPER_CLI, "-m", model, "-f", wav, "-t", str(threads), "-l", "en", "-otxt", "-ovtt", "-osrt",
                        "-oj", "-of", work / wav.stem], check=True, capture_output=True)
        # fmt: on
    return time.monotonic() - started


def daemon(root: Path, n: int, model: Path, threads: int, prefetch: int) -> float:
    """From the daemon's start to the last result accepted (the server's probe is done before)."""
    library(root / "audio", n)
    server = ServerProcess(root, DEFAULT_LANGUAGE="en").start()
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
        wall = time.monotonic() - started
        done = requests.get(server.url + "/api/v1/stats").json()["counts"]["done"]
        if done != n:
            raise SystemExit(f"only {done} of {n} files were done")
        return wall
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "ggml-tiny.en.bin")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stt-bench-client-") as tmp:
        root = Path(tmp)
        files = library(root / "files", args.files)
        (root / "bare").mkdir()
        walls = {"bare": bare(files, root / "bare", args.model, args.threads)}
        for prefetch in (1, 0):
            walls[f"PREFETCH={prefetch}"] = daemon(
                root / f"p{prefetch}", args.files, args.model, args.threads, prefetch
            )
    print(f"{args.files} files, {args.model.name}, {args.threads} threads")
    for name, wall in walls.items():
        print(f"  {name:<11} {wall:6.1f} s   bare / this = {walls['bare'] / wall:.3f}")


if __name__ == "__main__":
    main()
