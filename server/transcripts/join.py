"""Joining the results of a file's parts into the file's own txt, vtt, srt and json.

Each part was transcribed as a file of its own, so its timestamps start at 0. Every segment is
shifted by its part's start and clamped to its part's range: parts abut at cuts made in pauses,
so segments come out in order, each exactly once, on the whole file's timeline. A part's segments
are read from its whisper JSON when it sent one (keeping whatever else the entries carry, such
as token timings, shifted too), else from its VTT (what legacy clients send), else its SRT.

When a file's speakers were transcribed apart (each stream or channel its own parts), each part
names its speaker: every speaker's segments are merged on the file's timeline in start order (so
overlapping speech keeps both), each labelled, and a track's non-speech (`[BLANK_AUDIO]` where the
other one talks) is left out, as is what its track does not have (heard.py).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

from .heard import only_heard
from .vtt import Segment, clock, cues, segments_of_json, timing

NON_SPEECH = re.compile(r"^\s*(\[[^\]]*\]|\([^)]*\)|\*[^*]*\*)?\s*$")  # [BLANK_AUDIO], (silence), *music*, nothing


@dataclass(frozen=True)
class PartResult:
    start_ms: int
    end_ms: int
    files: dict[str, str]  # format -> text, as the part's client sent it
    meta: dict[str, Any] = field(default_factory=dict)
    speaker: Optional[str] = None  # a speaker's part: its label


def segments(part: PartResult) -> list[Segment]:
    """The part's segments, on its own timeline (0 = the part's start)."""
    if "json" in part.files and (from_json := segments_of_json(part.files["json"])) is not None:
        return from_json
    for fmt in ("vtt", "srt"):
        if fmt in part.files:
            return cues(part.files[fmt])
    text = part.files.get("txt", "").strip()
    return [Segment(0, part.end_ms - part.start_ms, text)] if text else []


def _shift(entry: dict[str, Any], start: int, end: int, offset: int, speaker: Optional[str]) -> dict[str, Any]:
    """A JSON entry (and its tokens and words) moved to the file's timeline, each naming its speaker."""
    out = copy.deepcopy(entry)
    inner = [
        t for key in ("tokens", "words") if isinstance(out.get(key), list) for t in out[key] if isinstance(t, dict)
    ]
    for item in [out, *inner]:
        if speaker is not None:
            item["speaker"] = speaker
        offsets = item.get("offsets")
        if isinstance(offsets, dict) and {"from", "to"} <= offsets.keys():
            a = min(max(int(offsets["from"]), start), end) + offset
            b = min(max(int(offsets["to"]), start), end) + offset
            item["offsets"] = {"from": a, "to": b}
            if "timestamps" in item:
                item["timestamps"] = {"from": clock(a, ","), "to": clock(b, ",")}
    return out


def shifted(parts: Sequence[PartResult], heard: Mapping[str, bytes] = MappingProxyType({})) -> list[Segment]:
    """Every part's segments on the whole file's timeline, in order (of start, across speakers)."""
    out: list[Segment] = []
    for part in sorted(parts, key=lambda p: p.start_ms):
        length = part.end_ms - part.start_ms
        for seg in segments(part):
            if part.speaker is not None and NON_SPEECH.match(seg.text):
                continue
            a = min(max(seg.start_ms, 0), length) + part.start_ms
            b = max(a, min(max(seg.end_ms, 0), length) + part.start_ms)
            entry = None if seg.entry is None else _shift(seg.entry, 0, length, part.start_ms, part.speaker)
            moved = Segment(a, b, seg.text, entry, part.speaker)
            kept = moved if part.speaker is None else only_heard(moved, heard.get(part.speaker))
            if kept is not None:
                out.append(kept)
    if any(p.speaker is not None for p in parts):
        out.sort(key=lambda s: s.start_ms)  # stable: each speaker's own order is kept
    return out


def to_json(segs: Sequence[Segment], parts: Sequence[PartResult], language: Optional[str]) -> str:
    """whisper-cli's JSON shape: the first part's header, then every segment."""
    head: dict[str, Any] = {}
    for part in parts:
        try:
            head = {k: v for k, v in json.loads(part.files["json"]).items() if k != "transcription"}
            break
        except (KeyError, ValueError, AttributeError):
            continue
    if language:
        head["result"] = {**head.get("result", {}), "language": language}
    transcription = [
        s.entry
        or {
            **timing(s.start_ms, s.end_ms),
            "text": s.text,
            **({"speaker": s.speaker} if s.speaker is not None else {}),
        }
        for s in segs
    ]
    return json.dumps({**head, "transcription": transcription}, indent=2, ensure_ascii=False) + "\n"


def stitch(
    parts: Sequence[PartResult], language: Optional[str] = None, heard: Mapping[str, bytes] = MappingProxyType({})
) -> dict[str, bytes]:
    """The whole file's results in every format, from its parts' results (`heard`: speaker -> where
    its track has its voice, heard.VOICE_FRAME_MS a frame)."""
    segs = shifted(parts, heard)
    vtt = "WEBVTT\n\n" + "".join(f"{clock(s.start_ms, '.')} --> {clock(s.end_ms, '.')}\n{_voice(s)}\n\n" for s in segs)
    srt = "".join(
        f"{i}\n{clock(s.start_ms, ',')} --> {clock(s.end_ms, ',')}\n{_said(s)}\n\n" for i, s in enumerate(segs, 1)
    )
    txt = "".join(f"{_said(s) if s.speaker != (segs[i - 1].speaker if i else None) else s.text}\n"
                  for i, s in enumerate(segs))  # fmt: skip
    return {
        "txt": txt.encode(),
        "vtt": vtt.encode(),
        "srt": srt.encode(),
        "json": to_json(segs, parts, language).encode(),
    }


def _voice(s: Segment) -> str:
    """A VTT cue's text, in its speaker's voice tag."""
    return s.text if s.speaker is None else f"<v {s.speaker}>{s.text.strip()}"


def _said(s: Segment) -> str:
    """The text led by its speaker's label (SRT cues; a TXT line where the speaker changes)."""
    return s.text if s.speaker is None else f"{s.speaker}: {s.text.strip()}"
