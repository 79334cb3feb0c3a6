#!/usr/bin/env python3
"""Cold start: how fast a fresh library goes out while the server still has to read every file's
length (splitting is on, so no file goes out before), against the same library once probed.

1. Probing alone, on N real MP3s: files/s reading container headers in-process (what the server
   does) against one ffprobe process per file (what it did).
2. A real server started on a fresh library of --files short MP3s, and 64 simulated clients doing
   lease -> result cycles from the moment it answers: cycles in the first --seconds.
3. The same library, every length known (the database kept, its tasks queued again, results
   removed): cycles in the first --seconds. Printed: the ratio of 2 to 3.

    python scripts/bench_cold_start.py [--files 20000] [--seconds 60] [--clients 64]

The machine is shared and noisy: compare figures from one run, never across runs.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from loadgen import generate, start_server, wait_ready  # noqa: E402

from server.disk.durations import from_headers  # noqa: E402
from stt_common.media import probe_seconds  # noqa: E402


def make_library(audio: Path, files: int) -> None:
    """`files` copies of one 3-second MP3, 500 to a folder."""
    sample = audio.parent / "sample.mp3"
    # fmt: off
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=300:d=3", "-ac", "1",
                    "-b:a", "16k", str(sample)], check=True)
    # fmt: on
    for i in range(files):
        d = audio / f"d{i // 500:03}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample, d / f"f{i:06}.mp3")


def probe_rates(audio: Path, n: int) -> None:
    paths = sorted(audio.rglob("*.mp3"))[:n]
    t = time.perf_counter()
    headers = [from_headers(p) for p in paths]
    fast = len(paths) / (time.perf_counter() - t)
    some = paths[: max(20, n // 10)]
    t = time.perf_counter()
    slow = [probe_seconds(p) for p in some]
    rate = len(some) / (time.perf_counter() - t)
    worst = max(abs(a - b) for a, b in zip(headers, slow, strict=False))
    print(f"probing: headers {fast:,.0f} files/s, ffprobe {rate:,.0f} files/s ({fast / rate:.0f}x); ", end="")
    print(f"largest difference {worst * 1000:.0f} ms on {len(slow)} files")


def unprobed(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as c:
        return c.execute("select count(*) from task where duration_ms is null and state != 'missing'").fetchone()[0]


def phase(root: Path, args: argparse.Namespace, title: str) -> int:
    server, url = start_server(root, args, SPLIT_SECONDS="600", LEASE_SECONDS="600")
    try:
        if not wait_ready(url, server, root / "server.err"):
            raise SystemExit(1)
        started = time.monotonic()
        rows, elapsed = generate(url, args)
        left = unprobed(root / "data" / "batch-stt.db")
    finally:
        server.terminate()
        server.wait(30)
    cycles = sum(1 for _, _, outcome, _ in rows if outcome == "accepted")
    print(f"{title}: {cycles} cycles in the first {elapsed:.0f} s ({cycles / elapsed:.0f}/s); ", end="")
    print(f"lengths still unknown after {time.monotonic() - started:.0f} s: {left}")
    return cycles


def requeue_all(root: Path) -> None:
    """Every task queued again with its length kept, as if the library had been probed beforehand."""
    with sqlite3.connect(root / "data" / "batch-stt.db", timeout=30) as c:
        c.execute("delete from attempt")
        c.execute("update task set state = 'queued', attempts = 0, done_at = null where state != 'missing'")
    # Set aside, not deleted: a server creating files right after thousands of deletions pays more
    # for each (see loadtest.py), and this phase is the baseline.
    results = root / "data" / "results"
    if results.exists():
        results.rename(root / "data" / "results-cold")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--probe-files", type=int, default=2000, help="files for the probing rates")
    args = ap.parse_args()
    args.protocol, args.sync, args.workers = "v1", "FULL", 1
    root = Path(tempfile.mkdtemp(prefix="stt-cold-"))
    try:
        make_library(root / "audio", args.files)
        probe_rates(root / "audio", args.probe_files)
        cold = phase(root, args, f"fresh library of {args.files} files")
        # Wait out the probing the cold phase left, so the warm phase starts with every length known.
        server, url = start_server(root, args, SPLIT_SECONDS="600")
        try:
            wait_ready(url, server, root / "server.err")
            while unprobed(root / "data" / "batch-stt.db"):
                time.sleep(1)
        finally:
            server.terminate()
            server.wait(30)
        requeue_all(root)
        warm = phase(root, args, "same library, lengths known")
        print(f"cold start / probed: {cold / max(warm, 1):.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
