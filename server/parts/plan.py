"""Where to cut a long file: in a pause near each nominal cut, found by decoding only a short
window around it, never the whole file (a 3-hour file costs the server seconds, not minutes).

A file of D ms becomes n = ceil(D / SPLIT) parts of nominally D / n each. Around each nominal cut
the window (±20 s, less for short splits so that cuts never cross) is decoded to 8 kHz mono and
measured in 20 ms frames. A pause is at least 0.3 s of frames 25 dB below the window's loud level
(its 95th percentile; any frame under -60 dBFS counts as quiet). The longest pause wins (a
sentence break rather than a breath), the nearer one on a tie, and the cut goes in its middle, so
both parts keep a margin of silence. A window without a pause is cut at its quietest 0.3 s, and
the part's record says so. Whisper then never sees a word cut in two.
"""

from __future__ import annotations

import math
import subprocess
from array import array
from dataclasses import dataclass, replace
from pathlib import Path

from stt_common.media import tail, tool

from ..disk import UnsafePath
from ..disk.layout import Layout
from ..disk.scanner import pending
from ..ledger import Parts, PlannedPart, Speakers, TaskView
from . import speakers
from .speakers import Track

RATE = 8000
FRAME = RATE // 50  # 20 ms
MIN_PAUSE = 15  # frames: 0.3 s
SETTLE = 5  # frames: 0.1 s
WINDOW_SECONDS = 20.0
BELOW_LOUD_DB = 25.0
QUIET_DB = -60.0


class WindowError(Exception):
    """ffmpeg could not decode the window around a cut."""


def nominal_cuts(duration_ms: int, split_ms: int) -> list[int]:
    n = -(-duration_ms // split_ms)
    return [round(duration_ms * k / n) for k in range(1, n)]


def decode_window(path: Path, start_s: float, seconds: float, streams: int = 1) -> array:
    """The window as 16-bit samples at 8 kHz mono; ffmpeg seeks, so only the window is decoded.
    A file whose speakers are in `streams` streams is heard mixed: a pause is where all are quiet."""
    inputs = "".join(f"[0:a:{i}]" for i in range(streams))
    mix = ["-filter_complex", f"{inputs}amix=inputs={streams}:normalize=0[m]", "-map", "[m]"] if streams > 1 else []
    # fmt: off
    cmd = [tool("ffmpeg"), "-nostdin", "-v", "error", "-ss", f"{start_s:.3f}", "-t", f"{seconds:.3f}",
           "-i", str(path), *mix, "-vn", "-ac", "1", "-ar", str(RATE), "-f", "s16le", "-"]
    # fmt: on
    r = subprocess.run(cmd, capture_output=True, timeout=120)
    if r.returncode != 0 or len(r.stdout) < 2 * FRAME * (MIN_PAUSE + SETTLE):
        raise WindowError(tail(r.stderr.decode("utf-8", "replace")) or f"ffmpeg exited with {r.returncode}")
    samples = array("h")
    samples.frombytes(r.stdout[: len(r.stdout) // 2 * 2])
    return samples


def frame_levels(samples: array) -> list[float]:
    """dBFS of each 20 ms frame."""
    levels = []
    for i in range(0, len(samples) - FRAME + 1, FRAME):
        power = sum(x * x for x in samples[i : i + FRAME]) / FRAME
        levels.append(10 * math.log10(power / 32768**2 + 1e-12))
    return levels


def choose_cut(levels: list[float], nominal_frame: int) -> tuple[int, str]:
    """(frame to cut at, how it was chosen) within one window's frame levels."""
    loud = sorted(levels)[int(0.95 * (len(levels) - 1))]
    threshold = max(loud - BELOW_LOUD_DB, QUIET_DB)
    pauses: list[tuple[int, int]] = []
    start = None
    for i, level in enumerate([*levels, math.inf]):
        if level < threshold and start is None:
            start = i
        elif level >= threshold and start is not None:
            if i - start >= MIN_PAUSE:
                pauses.append((start, i))
            start = None
    if pauses:
        a, b = max(pauses, key=lambda p: (p[1] - p[0], -abs((p[0] + p[1]) // 2 - nominal_frame)))
        return (a + b) // 2, f"pause of {(b - a) * FRAME / RATE:.1f} s"
    sums = [sum(levels[i : i + MIN_PAUSE]) for i in range(len(levels) - MIN_PAUSE + 1)]
    # Levels within 1 dB count as equal: then the point nearer the nominal cut wins.
    best = min(range(len(sums)), key=lambda i: (round(sums[i] / MIN_PAUSE), abs(i + MIN_PAUSE // 2 - nominal_frame)))
    return best + MIN_PAUSE // 2, f"no pause found: cut at the quietest point ({sums[best] / MIN_PAUSE:.0f} dBFS)"


def find_cut(path: Path, nominal_ms: int, window_s: float, streams: int = 1) -> tuple[int, str]:
    start_s = max(0.0, nominal_ms / 1000 - window_s)
    try:
        # The decoder's first frames after a seek are not the audio's own level: skip them.
        levels = frame_levels(decode_window(path, start_s, 2 * window_s, streams))[SETTLE:]
    except (WindowError, subprocess.TimeoutExpired) as e:
        return nominal_ms, f"window could not be decoded ({str(e).splitlines()[-1][:200]}): cut at the nominal point"
    start_s += SETTLE * FRAME / RATE
    frame, note = choose_cut(levels, round((nominal_ms / 1000 - start_s) * RATE / FRAME))
    return round(start_s * 1000 + frame * FRAME * 1000 / RATE), note


def plan(path: Path, duration_ms: int, split_ms: int, streams: int = 1) -> list[PlannedPart]:
    """The parts of a file (longer than `split_ms`, else one), each beginning where the previous one ends."""
    if not (split_ms and duration_ms > split_ms):
        return [PlannedPart(0, duration_ms, "the whole file")]
    window_s = min(WINDOW_SECONDS, split_ms / 4000)
    bounds, notes = [0], ["start of the file"]
    for nominal in nominal_cuts(duration_ms, split_ms):
        cut, note = find_cut(path, nominal, window_s, streams)
        if not bounds[-1] + 1000 <= cut <= duration_ms - 1000:  # never an empty or backwards part
            cut, note = nominal, f"{note}; out of range, cut at the nominal point"
        bounds.append(cut)
        notes.append(note)
    bounds.append(duration_ms)
    return [PlannedPart(bounds[i], bounds[i + 1], notes[i]) for i in range(len(notes))]


def per_speaker(times: list[PlannedPart], tracks: list[Track]) -> list[PlannedPart]:
    """Each time range once per speaker's track (the ranges alone when the file is one speaker)."""
    if not tracks:
        return times
    return [replace(p, stream=t.stream, channel=t.channel, speaker=t.speaker) for t in tracks for p in times]


@dataclass(frozen=True)
class Splitter:
    """When files are cut: a file longer than SPLIT_SECONDS (split_ms; 0: never), or one whose
    speakers are apart (speakers.py), that nobody has started, as it is probed (disk/scanner.py
    calls it) and, once at start, every probed long one."""

    parts: Parts
    layout: Layout
    split_ms: int
    speakers: Speakers = Speakers.OFF  # SPEAKERS; a job may ask otherwise (task.speakers)

    def __call__(self, t: TaskView, full: Path, size: int, duration_ms: int) -> bool:
        """Cut it if it is too long or holds several speakers, and is unstarted; True if it was cut."""
        if t.attempts or duration_ms <= 0:
            return False
        tracks = speakers.find(full, Speakers(t.speakers) if t.speakers else self.speakers)
        if not (tracks or (self.split_ms and duration_ms > self.split_ms)):
            return False
        return self.cut(t, full, size, duration_ms, tracks)

    def cut(self, t: TaskView, full: Path, size: int, duration_ms: int, tracks: list[Track]) -> bool:
        streams = len(tracks) if tracks and tracks[0].channel is None else 1
        times = plan(full, duration_ms, self.split_ms, streams)
        return self.parts.split(t, size, duration_ms, self.split_ms, per_speaker(times, tracks))

    def apply(self) -> int:
        """At start (settings are read once): make whole again what was cut for another value (probed
        and cut anew), and cut what is now too long. Returns how many files were cut."""
        for file_id in self.parts.stale(self.split_ms):
            self.parts.unsplit(file_id, self.split_ms)
        if not self.split_ms:
            return 0
        done = 0
        for t in pending(lambda: self.parts.to_split(self.split_ms)):
            try:
                full = self.layout.audio_path(t)
                size = full.stat().st_size
            except (OSError, UnsafePath):
                continue  # gone: the next scan marks it missing
            if t.duration_ms and size == t.size:
                done += self(t, full, size, t.duration_ms)
        return done
