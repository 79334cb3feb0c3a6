"""The transcript formats' timelines: WebVTT and SRT cues, whisper's JSON segments, and plain text
from a VTT (what legacy clients send). Pure text: no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

_CUE_TIME = re.compile(r"^\s*((?:\d+:)?\d+:\d+[.,]\d+)\s*-->\s*((?:\d+:)?\d+:\d+[.,]\d+)")


@dataclass(frozen=True)
class Segment:
    start_ms: int
    end_ms: int
    text: str
    entry: Optional[dict[str, Any]] = None  # the whisper JSON entry, if there was one
    speaker: Optional[str] = None  # whose track it came from, when a file's speakers were apart


def parse_time(stamp: str) -> int:
    """`01:02:03.456`, `02:03,456` -> milliseconds."""
    *hm, s = stamp.replace(",", ".").split(":")
    seconds = float(s) + sum(int(v) * 60**i for i, v in enumerate(reversed(hm), start=1))
    return round(seconds * 1000)


def clock(ms: int, sep: Optional[str] = ".") -> str:
    """`3725042` -> `01:02:05.042` (VTT; sep="," for SRT; None: whole seconds, as Markdown shows it)."""
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}" + ("" if sep is None else f"{sep}{ms:03d}")


def timing(a: int, b: int) -> dict[str, dict[str, Any]]:
    """A whisper JSON entry's `offsets` (ms) and `timestamps` (SRT clock) for [a, b]."""
    return {"timestamps": {"from": clock(a, ","), "to": clock(b, ",")}, "offsets": {"from": a, "to": b}}


def cues(text: str) -> list[Segment]:
    """The cues of a VTT or SRT file."""
    out: list[Segment] = []
    timing: Optional[tuple[int, int]] = None
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        if m := _CUE_TIME.match(line):
            timing, lines = (parse_time(m.group(1)), parse_time(m.group(2))), []
        elif not line.strip():
            if timing is not None:
                out.append(Segment(timing[0], timing[1], "\n".join(lines)))
            timing = None
        elif timing is not None:
            lines.append(line)
    return out


def segments_of_json(text: str) -> Optional[list[Segment]]:
    """whisper-cli's JSON's segments; None if it is not whisper's JSON after all."""
    try:
        entries = json.loads(text).get("transcription", [])
        return [Segment(e["offsets"]["from"], e["offsets"]["to"], e["text"], e) for e in entries]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def vtt_to_text(vtt: str) -> str:
    """Plain text from WebVTT: one line per cue, headers, cue ids and timings dropped."""
    lines: list[str] = []
    cue: list[str] = []
    for line in vtt.splitlines():
        line = line.strip()
        if _CUE_TIME.match(line):
            cue = []
            continue
        if not line:
            if cue:
                lines.append(" ".join(cue))
            cue = []
            continue
        if line.startswith("WEBVTT") or line.startswith("NOTE") or (line.isdigit() and not cue):
            continue
        cue.append(line)
    if cue:
        lines.append(" ".join(cue))
    return "\n".join(lines) + ("\n" if lines else "")
