"""Two speakers built here with ffmpeg from the shared speech: Alice (jfk, at 0 s and again at 70 s)
and Bob (millbrook, from 9 s to 71 s), so they alternate and overlap twice. As an MKV with one
stream each (titled), a stereo MP3 with one each per channel, with or without each microphone
picking up the other, and their one-speaker references."""

from __future__ import annotations

import difflib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SECONDS = 81


@dataclass(frozen=True)
class TwoSpeakers:
    alice: Path  # each speaker's track alone, 16 kHz mono WAV
    bob: Path
    reference: dict[str, str]  # track -> what is said on it


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def build_tracks(shared: Path, work: Path) -> TwoSpeakers:
    work.mkdir(parents=True, exist_ok=True)
    audio = shared / "audio"
    alice, bob = work / "alice.wav", work / "bob.wav"
    pad = f"apad=whole_dur={SECONDS},aresample=16000"
    ffmpeg("-i", audio / "jfk.wav", "-i", audio / "jfk.wav", "-filter_complex",
           f"[1]adelay=70000[b];[0][b]amix=inputs=2:normalize=0,{pad}", "-ac", "1", alice)  # fmt: skip
    ffmpeg("-i", audio / "millbrook.mp3", "-af", f"adelay=9000,{pad}", "-ac", "1", bob)
    jfk = (audio / "jfk.txt").read_text().strip()
    return TwoSpeakers(alice, bob, {"alice": f"{jfk} {jfk}", "bob": (audio / "millbrook.txt").read_text().strip()})


def with_crosstalk(t: TwoSpeakers, work: Path, gain: float = 0.1) -> TwoSpeakers:
    """Each speaker's microphone also picking up the other at `gain` (0.1: 20 dB down)."""
    leaky = {}
    for name, own, other in (("alice", t.alice, t.bob), ("bob", t.bob, t.alice)):
        leaky[name] = work / f"{name}-crosstalk.wav"
        ffmpeg("-i", own, "-i", other, "-filter_complex", f"[1]volume={gain}[o];[0][o]amix=inputs=2:normalize=0",
               "-ac", "1", leaky[name])  # fmt: skip
    return TwoSpeakers(leaky["alice"], leaky["bob"], t.reference)


def as_streams(t: TwoSpeakers, dest: Path, titles: tuple[str, str] = ("Alice", "Bob")) -> Path:
    """One MKV, one AAC stream per speaker, titled."""
    ffmpeg("-i", t.alice, "-i", t.bob, "-map", "0", "-map", "1", "-c:a", "aac", "-b:a", "64k",
           "-metadata:s:a:0", f"title={titles[0]}", "-metadata:s:a:1", f"title={titles[1]}", dest)  # fmt: skip
    return dest


def as_channels(t: TwoSpeakers, dest: Path) -> Path:
    """One stereo MP3: Alice left, Bob right."""
    ffmpeg("-i", t.alice, "-i", t.bob, "-filter_complex", "[0][1]join=inputs=2:channel_layout=stereo",
           "-c:a", "libmp3lame", "-b:a", "96k", dest)  # fmt: skip
    return dest


def same_on_both(source: Path, dest: Path) -> Path:
    """A stereo MP3 with the same audio on both channels."""
    ffmpeg("-i", source, "-ac", "2", "-c:a", "libmp3lame", "-b:a", "96k", dest)
    return dest


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def attributed(reference: str, labelled: list[tuple[str, str]], label: str) -> float:
    """Of the reference's words found (aligned) in the merged transcript, the share under `label`:
    whose the words are, not whether the model heard them right (that is the WER's business)."""
    ref = words(reference)
    merged = [(w, who) for text, who in labelled for w in words(text)]
    blocks = difflib.SequenceMatcher(None, ref, [w for w, _ in merged], autojunk=False).get_matching_blocks()
    found = [merged[j + k][1] for _, j, n in blocks for k in range(n)]
    return sum(who == label for who in found) / len(found)


def alone(whisper_cli: Path, model: Path, source: Path, work: Path, name: str, *select: str) -> str:
    """One speaker's track of `source` (`select`: ffmpeg's -map or pan) transcribed by bare whisper-cli:
    the baseline that speaker's WER is held to."""
    wav = work / f"{name}-alone.wav"
    ffmpeg("-i", source, *select, "-ar", "16000", "-ac", "1", wav)
    out = work / f"{name}-alone"
    cmd: list[str | Path] = [whisper_cli, "-m", model, "-f", wav, "-t", "2", "-l", "en", "-otxt", "-of", out]
    subprocess.run(cmd, check=True, capture_output=True)
    return out.with_suffix(".txt").read_text()
