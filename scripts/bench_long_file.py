#!/usr/bin/env python3
"""Wall time of one long file: bare whisper-cli on the whole file, then the real server cutting it
into parts for one real client, then for two clients, all in the same run (the ratios are what
to compare; these machines are shared and noisy). Also the WER of each against the reference.

    python scripts/bench_long_file.py [--split-seconds 40] [--threads 1] [--model ../shared/models/ggml-tiny.en.bin]

The file is the test suite's (tests/helpers.py: build_long_speech, needs espeak-ng).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import SHARED, WHISPER_CLI, ServerProcess, build_long_speech, client_env, wer_percent  # noqa: E402


def bare(audio: Path, work: Path, model: Path, threads: int) -> tuple[float, str]:
    wav = work / "whole.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", audio, "-ar", "16000", "-ac", "1", wav], check=True)
    started = time.monotonic()
    # fmt: off
    subprocess.run([WHISPER_CLI, "-m", model, "-f", wav, "-t", str(threads), "-otxt", "-of", work / "whole"],
                   check=True, capture_output=True)
    # fmt: on
    return time.monotonic() - started, (work / "whole.txt").read_text()


def fleet(root: Path, model: Path, clients: int, threads: int, split_seconds: int) -> tuple[float, str]:
    """Seconds from the clients' start to the stitched result, and its text."""
    server = ServerProcess(root, SPLIT_SECONDS=split_seconds).start()
    try:
        while requests.get(server.url + "/api/v1/tasks").json()[0]["state"] != "split":
            time.sleep(0.1)
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "client.cli", "run", "--until-idle"],
                env=client_env(root, server.url, model, f"c{i}", THREADS=threads),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(clients)
        ]
        for p in procs:
            p.wait(3600)
        done = next(root.glob("data/results/**/long.meta.json"), None)
        while done is None:
            time.sleep(0.05)
            done = next(root.glob("data/results/**/long.meta.json"), None)
        return time.monotonic() - started, done.with_name("long.txt").read_text()
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split-seconds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1, help="whisper-cli threads, per client and for the baseline")
    ap.add_argument("--model", type=Path, default=SHARED / "models/ggml-tiny.en.bin")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stt-long-") as tmp:
        return measure(Path(tmp), args)


def measure(work: Path, args: argparse.Namespace) -> int:
    """The baseline and both fleets in `work` (removed after)."""
    audio = work / "long.mp3"
    reference = build_long_speech(SHARED, audio)
    seconds = float(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", audio],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    base_s, base_text = bare(audio, work, args.model, args.threads)
    print(f"{seconds:.0f} s of speech, SPLIT_SECONDS={args.split_seconds}, -t {args.threads}, {args.model.name}")
    print(f"bare whisper-cli, whole file: {base_s:6.1f} s  WER {wer_percent(reference, base_text):.1f} %")
    for n in (1, 2):
        root = work / f"fleet{n}"
        (root / "audio").mkdir(parents=True)
        (root / "audio" / "long.mp3").write_bytes(audio.read_bytes())
        wall, text = fleet(root, args.model, n, args.threads, args.split_seconds)
        print(f"server + {n} client(s), parts: {wall:6.1f} s  WER {wer_percent(reference, text):.1f} %  "
              f"({wall / base_s:.2f} of bare whisper-cli)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
