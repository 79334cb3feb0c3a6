#!/usr/bin/env python3
"""MAX_CPU_PERCENT against no limit, measured in the same run on real whisper-cli: whisper-cli's
CPU seconds per wall second held to 25, 50 and 75 %, as a share of what it uses unlimited
(alternating runs, the median of each). The issue's goal: 50 % within 10 points.

    .venv/bin/python scripts/bench_courtesy.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client import transcribe
from tests.helpers import SHARED, WHISPER_CLI
from tests.integration.test_courtesy import whisper_share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    limits = (100, 25, 50, 75)
    shares: dict[int, list[float]] = {limit: [] for limit in limits}
    with tempfile.TemporaryDirectory() as tmp:
        wav, seconds, _ = transcribe.prepare_audio(SHARED / "audio/millbrook.mp3", Path(tmp))
        for _ in range(args.rounds):
            for limit in limits:
                shares[limit].append(whisper_share(SHARED, WHISPER_CLI, wav, Path(tmp), limit))
    unlimited = statistics.median(shares[100])
    print(f"whisper-cli tiny.en, 2 threads, millbrook ({seconds:.0f} s), {args.rounds} rounds, medians:")
    print(f"  unlimited: {unlimited:.2f} CPU-s/s")
    for limit in limits[1:]:
        share = statistics.median(shares[limit])
        print(f"  MAX_CPU_PERCENT={limit}: {share:.2f} CPU-s/s = {100 * share / unlimited:.0f} % of unlimited")


if __name__ == "__main__":
    main()
