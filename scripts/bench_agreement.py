#!/usr/bin/env python3
"""How far apart are two honest transcripts of the same audio? The figure behind VALIDATE_WER.

Transcribes the shared speech with real whisper-cli in several honest configurations of one model
tier (threads, greedy or beam search, and a second model of that tier when given) and prints the
validation distance (server/transcripts/compare.py: the larger WER of either against the other,
on normalised words) for every pair, next to the distance from a liar's transcript (the same
words, each swapped for another: what a modified client or a broken GPU might send).

    python scripts/bench_agreement.py [--models ../shared/models/ggml-tiny.en.bin,...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from sim_host import LIES  # noqa: E402  (simulate_fleet's liars' words)

from server.transcripts.compare import distance  # noqa: E402

CLI = REPO / "client/whisper/whisper.cpp/build/bin/whisper-cli"
SHARED = REPO.parent / "shared"


def transcribe(model: Path, wav: Path, threads: int, greedy: bool, out: Path) -> str:
    cmd = [str(CLI), "-m", str(model), "-f", str(wav), "-t", str(threads), "-l", "en", "-otxt", "-of", str(out), "-np"]
    if greedy:
        cmd += ["-bs", "1", "-bo", "1"]
    subprocess.run(cmd, check=True, capture_output=True)
    return Path(f"{out}.txt").read_text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(SHARED / "models" / "ggml-tiny.en.bin"), help="comma-separated")
    args = ap.parse_args()
    models = [Path(m) for m in args.models.split(",")]
    configs = [(m, t, g) for m in models for t in (1, 2) for g in (False, True)]
    worst_honest, nearest_liar = 0.0, 1.0
    with tempfile.TemporaryDirectory() as tmp:
        for audio in ("jfk", "millbrook"):
            wav = Path(tmp) / f"{audio}.wav"
            mp3 = str(SHARED / "audio" / f"{audio}.mp3")
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", mp3, "-ar", "16000", "-ac", "1", str(wav)], check=True)
            texts: dict[str, str] = {}
            for m, t, g in configs:
                name = f"{m.stem} -t {t} {'greedy' if g else 'beam'}"
                texts[name] = transcribe(m, wav, t, g, Path(tmp) / f"{audio}-{len(texts)}")
            pairs = [distance(texts[a], texts[b]) for a, b in combinations(texts, 2)]
            some = next(iter(texts.values()))
            lie = re.sub(r"[A-Za-z]+", lambda w: LIES[len(w.group(0)) % len(LIES)], some)
            liar = min(distance(text, lie) for text in texts.values())
            print(f"{audio}: {len(texts)} honest configurations, pairwise distance max {max(pairs):.3f}"
                  f" (mean {sum(pairs) / len(pairs):.3f}); a liar's nearest {liar:.3f}")  # fmt: skip
            worst_honest, nearest_liar = max(worst_honest, max(pairs)), min(nearest_liar, liar)
    print(f"honest pairs at most {worst_honest:.3f} apart; liars at least {nearest_liar:.3f} (VALIDATE_WER: 0.15)")


if __name__ == "__main__":
    main()
