"""simulate_fleet.py's library: files of realistic lengths (optionally in several languages),
cut from one noise MP3 so that building thousands of them takes seconds."""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class File:
    path: str  # relative to AUDIO_DIR
    seconds: float
    language: str = "auto"
    min_tier: int = 0


def library(files: int, seed: int, mixed: bool) -> list[File]:
    """Minutes: three quarters short (1-15), the rest 20-60, and 3 of 60-120; names shuffled, so
    path order says nothing about length. Mixed: every third file French or German, in a folder
    named for its language; the rest English."""
    rng = random.Random(seed)
    long = [rng.uniform(60, 120) for _ in range(min(3, files))]
    middle = [rng.uniform(20, 60) for _ in range(max(0, files // 4 - len(long)))]
    short = [rng.uniform(1, 15) for _ in range(files - len(long) - len(middle))]
    minutes = short + middle + long
    names = list(range(len(minutes)))
    rng.shuffle(names)
    out = []
    for i, (m, n) in enumerate(zip(minutes, names, strict=True)):
        lang = ("fr", "de")[i // 3 % 2] if mixed and i % 3 == 2 else ("en" if mixed else "auto")
        folder = f"{lang}/" if mixed else ""
        out.append(File(f"{folder}talk-{n:03}.mp3", round(m * 60, 1), lang))
    return out


def noise_mp3(cache: Path) -> Path:
    """One noise MP3 (8 kbit/s: 2 hours is 7 MB) that every file is cut from, so building takes seconds."""
    base = cache / "noise-2h.mp3"
    if not base.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # fmt: off
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anoisesrc=r=8000:a=0.1:d=7260",
                        "-ac", "1", "-b:a", "8k", str(base) + ".tmp.mp3"], check=True)
        # fmt: on
        Path(str(base) + ".tmp.mp3").rename(base)
    return base


def cut(base: Path, out: Path, seconds: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", base, "-t", str(seconds), "-c", "copy", out], check=True)
