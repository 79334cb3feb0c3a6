#!/usr/bin/env python3
"""What measuring where each speaker is heard (server/parts/voice.py, run by the stitcher) costs,
against decoding the same streams once with ffmpeg (the least any look at the audio costs), in one run.

Builds an MKV of two speakers' streams (tests/speakers.py, from ../shared/audio) looped to MINUTES.

    python scripts/bench_voice.py [--minutes 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.parts import voice  # noqa: E402
from tests.speakers import SECONDS, as_streams, build_tracks  # noqa: E402


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    shared = Path(os.environ.get("STT_TEST_ASSETS", REPO.parent / "shared"))
    with tempfile.TemporaryDirectory(prefix="stt-voice-") as tmp:
        work = Path(tmp)
        short = as_streams(build_tracks(shared, work), work / "short.mkv")
        loops = max(0, round(args.minutes * 60 / SECONDS) - 1)
        long = work / "long.mkv"
        cmd = [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            str(loops),
            "-i",
            str(short),
            "-map",
            "0",
            "-c",
            "copy",
            str(long),
        ]
        subprocess.run(cmd, check=True)
        decode = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(long), "-map", "0:a", "-f", "null", "-"]
        tracks = {"Alice": (0, None), "Bob": (1, None)}
        for r in range(args.rounds):
            base = timed(lambda: subprocess.run(decode, check=True))
            measured = timed(lambda: voice.heard(long, tracks))
            print(
                f"round {r + 1}: {args.minutes:.0f} min, 2 streams: decode {base:.2f} s, voice map {measured:.2f} s, "
                f"ratio {measured / base:.2f}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (the voice maps included): {peak:.0f} MB")


if __name__ == "__main__":
    main()
