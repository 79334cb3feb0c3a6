"""Where a speaker's own track has sound, per 100 ms frame: the stitcher keeps a speaker's segment
only where its track is heard, and starts it there.

A track of one speaker is silent (or nearly) while the others talk, and whisper both invents words
in long silences ("to be a good person.") and starts a segment at the beginning of the silence
before it. And a speaker's microphone also picks up the others (crosstalk), more quietly: whisper
transcribes that too.

ffmpeg measures the levels (no decode in Python). A frame has the speaker's voice when it is above
FLOOR_DB, within BELOW_LOUD_DB of its track's loud level (95th percentile of its frames above the
floor), and louder, by OVER_LEAK_DB, than what each other speaker's sound explains: that speaker's
level plus how much of it leaks into this track (the median difference while that speaker is loud).
So two speakers talking at once are both heard, microphones set louder or softer compare fairly,
and a voice leaking into another's track is not taken for that speaker's.
"""

from __future__ import annotations

import re
import subprocess
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from stt_common.media import tool

from ..transcripts.heard import LEAK, QUIET, VOICE, VOICE_FRAME_MS

BELOW_LOUD_DB = 30.0
OVER_LEAK_DB = 6.0
LOUD_WITHIN_DB = 10.0  # "while that speaker is loud": this near its loud level
FLOOR_DB = -55.0
SILENT_DB = -200.0  # digital silence, and an empty frame
_LEVEL = re.compile(rb"RMS_level=(-?inf|-?nan|-?[\d.]+)")


def levels(path: Path, stream: int, channel: Optional[int]) -> Optional[array]:
    """dBFS of each frame of the track; None when ffmpeg cannot read it."""
    samples = 8000 * VOICE_FRAME_MS // 1000
    mono = f"pan=mono|c0=c{channel}" if channel is not None else "aformat=channel_layouts=mono"
    graph = (
        f"{mono},aresample=8000,asetnsamples=n={samples}:p=0,astats=metadata=1:reset=1:measure_perchannel=none"
        ":measure_overall=RMS_level,ametadata=print:key=lavfi.astats.Overall.RMS_level:file=-"
    )
    cmd = [tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}", "-af", graph,
           "-f", "null", "-"]  # fmt: skip
    out = array("f")
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := _LEVEL.search(line):
                value = float(m.group(1))
                out.append(max(value, SILENT_DB) if value == value else SILENT_DB)  # -inf, nan
    return out if proc.returncode == 0 and out else None


def loud_level(dbs: array) -> float:
    """The 95th percentile of the frames above the floor (a speaker may be quiet most of the file)."""
    sounding = sorted(db for db in dbs if db >= FLOOR_DB)
    return sounding[int(0.95 * (len(sounding) - 1))] if sounding else FLOOR_DB


def leak(into: array, source: array, source_loud: float) -> float:
    """How loud `source`'s sound is in `into`'s track, relative to it (dB): the median difference
    while `source` is loud. SILENT_DB-ish when nothing leaks."""
    n = min(len(into), len(source))
    diffs = sorted(into[i] - source[i] for i in range(n) if source[i] >= source_loud - LOUD_WITHIN_DB)
    return diffs[len(diffs) // 2] if diffs else SILENT_DB


def heard(path: Path, tracks: Mapping[str, tuple[int, Optional[int]]]) -> dict[str, bytes]:
    """speaker -> for each frame of its track (stream, channel): VOICE, LEAK (sound that is another
    speaker's) or QUIET; a track that cannot be measured is left out."""
    measured = {speaker: dbs for speaker, track in tracks.items() if (dbs := levels(path, *track)) is not None}
    loud = {speaker: loud_level(dbs) for speaker, dbs in measured.items()}
    out = {}
    for speaker, dbs in measured.items():
        others = [(o, leak(dbs, o, loud[other])) for other, o in measured.items() if other != speaker]
        floor = max(FLOOR_DB, loud[speaker] - BELOW_LOUD_DB)
        out[speaker] = bytes(
            QUIET
            if db < floor
            else VOICE
            if all(i >= len(o) or db >= o[i] + gain + OVER_LEAK_DB for o, gain in others)
            else LEAK
            for i, db in enumerate(dbs)
        )
    return out
