"""Which speakers a file keeps apart: its audio streams (a podcast or a call recorded per speaker, in
one MKV/MP4/MKA), or the two channels of a stereo stream (a phone or interview recording). Each
becomes its own parts (plan.Splitter), so no diarization model is needed anywhere.

`auto` costs a fresh library nothing for formats that hold one audio stream (MP3, WAV, FLAC...):
only containers that can hold several are asked with ffprobe. `channels` checks that the two
channels really differ (a stereo file with the same audio on both is one speaker).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mutagen.mp4 import AtomError, Atoms

from stt_common.media import tool

from ..ledger import Speakers

# Containers that hold one audio stream as files are made: `auto` need not ask ffprobe; MP4's tracks
# are counted from its headers in this process (an M4A library is scanned as fast as an MP3 one).
ONE_STREAM = frozenset([".mp3", ".wav", ".flac", ".aac", ".wma", ".ogg", ".opus"])
MP4 = frozenset([".m4a", ".m4b", ".mp4", ".mov"])
SAMPLE_SECONDS = 600  # how much of a stereo stream is compared for `channels`
SAME_BELOW_DB = 20.0  # the channels' difference this far below their sum: the same audio on both
DEFAULT_HANDLER = re.compile(r"(?i)handler|core media|^soun|^$")
_RMS = re.compile(r"RMS level dB:\s*(-?inf|-?[\d.]+)")


@dataclass(frozen=True)
class Track:
    """One speaker's audio: a stream (its index among the file's audio streams), or one channel of it."""

    stream: int
    channel: Optional[int]
    speaker: str


@dataclass(frozen=True)
class AudioStream:
    channels: int
    title: Optional[str]
    language: Optional[str]


def audio_streams(path: Path) -> list[AudioStream]:
    """The file's audio streams as ffprobe lists them; none when it cannot read the file."""
    # fmt: off
    cmd = [tool("ffprobe"), "-v", "error", "-select_streams", "a", "-show_entries",
           "stream=channels:stream_tags=title,language,handler_name", "-of", "json", str(path)]
    # fmt: on
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120)
        listed: list[dict[str, Any]] = json.loads(r.stdout).get("streams", [])
        return [_stream(s) for s in listed]
    except (OSError, subprocess.TimeoutExpired, ValueError, AttributeError, TypeError):
        return []  # no ffprobe, or it hung on this file: one speaker, as before


def _stream(s: dict[str, Any]) -> AudioStream:
    tags = {str(k).lower(): _clean(str(v)) for k, v in (s.get("tags") or {}).items()}
    language = tags.get("language")
    handler = tags.get("handler_name", "")  # MP4 names its tracks here; muxers fill in their own default
    title = tags.get("title") or (None if DEFAULT_HANDLER.search(handler) else handler)
    return AudioStream(int(s.get("channels") or 0), title or None, None if language in (None, "", "und") else language)


def _clean(text: str) -> str:
    """A label safe in every format (a VTT voice tag ends at `>`)."""
    return re.sub(r"[\x00-\x1f<>&]", "", text).strip()[:64]


def mp4_sound_tracks(path: Path) -> Optional[int]:
    """How many sound tracks an MP4 lists (mutagen reads the headers); None when it cannot tell."""
    try:
        with path.open("rb") as f:
            moov = Atoms(f).path(b"moov")[-1]
            count = 0
            for trak in moov.findall(b"trak"):
                hdlr = trak[b"mdia", b"hdlr"]
                f.seek(hdlr.offset + 16)  # size, type, version and flags, pre_defined: then the handler type
                count += f.read(4) == b"soun"
            return count or None
    except (OSError, KeyError, IndexError, ValueError, EOFError, AtomError):
        return None


def same_channels(path: Path, stream: int = 0) -> bool:
    """Whether a stereo stream carries one signal on both channels: their difference's level against
    their sum's, over its first SAMPLE_SECONDS (ffmpeg measures; nothing is kept in memory)."""
    # fmt: off
    cmd = [tool("ffmpeg"), "-nostdin", "-v", "info", "-t", str(SAMPLE_SECONDS), "-i", str(path),
           "-map", f"0:a:{stream}", "-af", "pan=stereo|c0=0.5*c0+0.5*c1|c1=0.5*c0-0.5*c1,"
           "astats=measure_perchannel=RMS_level:measure_overall=none", "-f", "null", "-"]
    # fmt: on
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return True
    levels = [float(m) for m in _RMS.findall(r.stderr)]  # "-inf" reads as float too
    if r.returncode != 0 or len(levels) < 2:
        return True  # cannot tell: one speaker, as before
    total, difference = levels[-2], levels[-1]
    return difference <= total - SAME_BELOW_DB


def names(streams: Sequence[AudioStream]) -> list[str]:
    """A label per speaker: the stream's title, else `Speaker N` (with its language when tagged);
    repeated titles get a number."""
    out: list[str] = []
    for n, s in enumerate(streams, 1):
        label = s.title or (f"Speaker {n} ({s.language})" if s.language else f"Speaker {n}")
        out.append(label if label not in out else f"{label} ({n})")
    return out


def find(path: Path, mode: Speakers) -> list[Track]:
    """The file's speakers under `mode`; none (one speaker, the file as before) unless it has two or more."""
    suffix = path.suffix.lower()
    if mode == Speakers.OFF or (mode == Speakers.AUTO and suffix in ONE_STREAM):
        return []
    if mode == Speakers.AUTO and suffix in MP4 and mp4_sound_tracks(path) == 1:
        return []
    streams = audio_streams(path)
    if len(streams) >= 2:  # `channels` too: splitting one stream's channels would lose the others
        return [Track(i, None, label) for i, label in enumerate(names(streams))]
    if mode != Speakers.CHANNELS or not streams or streams[0].channels != 2 or same_channels(path):
        return []
    title = streams[0].title
    labels = [f"{title} (left)", f"{title} (right)"] if title else ["Speaker 1", "Speaker 2"]
    return [Track(0, channel, label) for channel, label in enumerate(labels)]
