#!/usr/bin/env python3
"""How far apart are two honest transcripts of the same audio? The figure behind VALIDATE_WER.

Transcribes the shared speech with real whisper-cli in several honest configurations of one model
tier (threads, greedy or beam search, and a second model of that tier when given) and prints the
validation distance (server/transcripts/compare.py: the larger WER of either against the other,
on normalised words) for every pair, next to the distance from a liar's transcript (the same
words, each swapped for another: what a modified client or a broken GPU might send). Then spot
checks: each configuration's whole transcript of millbrook (62 s) against every other's transcript
of a range alone (cut with ffmpeg as the client cuts it), compared as the server compares them.

    python scripts/bench_agreement.py [--models ../shared/models/ggml-tiny.en.bin,...] [--spot 40]
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

from server.transcripts.compare import distance, spot_distance, timed_words  # noqa: E402

CLI = REPO / "client/whisper/whisper.cpp/build/bin/whisper-cli"
SHARED = REPO.parent / "shared"


def transcribe(model: Path, wav: Path, threads: int, greedy: bool, out: Path) -> str:
    return transcript(model, wav, threads, greedy, out)["txt"]


def transcript(model: Path, wav: Path, threads: int, greedy: bool, out: Path) -> dict[str, str]:
    cmd = [str(CLI), "-m", str(model), "-f", str(wav), "-t", str(threads), "-l", "en", "-otxt", "-ovtt", "-np"]
    if greedy:
        cmd += ["-bs", "1", "-bo", "1"]
    subprocess.run([*cmd, "-of", str(out)], check=True, capture_output=True)
    return {fmt: Path(f"{out}.{fmt}").read_text() for fmt in ("txt", "vtt")}


def spot_checks(configs: list[tuple[Path, int, bool]], seconds: float, tmp: Path) -> None:
    """Every configuration's whole millbrook against every other's range alone, at several places."""
    mp3 = str(SHARED / "audio" / "millbrook.mp3")
    wav = tmp / "spot-whole.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", mp3, "-ar", "16000", "-ac", "1", str(wav)], check=True)
    whole = [transcript(m, wav, t, g, tmp / f"spot-whole-{i}") for i, (m, t, g) in enumerate(configs)]
    honest, liars = [], []
    for start in (round((62.0 - seconds) * k / 3, 1) for k in range(4)):
        part = tmp / f"spot-{start:g}.wav"
        cut = ["ffmpeg", "-v", "error", "-y", "-ss", f"{start:.3f}", "-t", f"{seconds:.3f}", "-i", mp3]
        subprocess.run([*cut, "-ar", "16000", "-ac", "1", str(part)], check=True)
        for i, (m, t, g) in enumerate(configs):
            checked = timed_words(transcript(m, part, t, g, tmp / f"spot-{start:g}-{i}"), seconds, start)
            lie = [(at, LIES[len(w) % len(LIES)]) for at, w in checked]
            for j, files in enumerate(whole):
                held = timed_words(files, 62.0)
                if i != j:
                    honest.append(spot_distance(held, checked, start, start + seconds))
                liars.append(spot_distance(held, lie, start, start + seconds))
    mean = sum(honest) / len(honest)
    print(f"spot checks of {seconds:g} s (4 places): honest pairs at most {max(honest):.3f} apart (mean {mean:.3f},"
          f" {len(honest)} pairs); a liar's range at least {min(liars):.3f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(SHARED / "models" / "ggml-tiny.en.bin"), help="comma-separated")
    ap.add_argument("--spot", type=float, default=40.0, help="a spot check's length (seconds, at most 60; 0: none)")
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
        if args.spot:
            spot_checks(configs, args.spot, Path(tmp))


if __name__ == "__main__":
    main()
