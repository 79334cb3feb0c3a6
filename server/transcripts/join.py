"""Joining the results of a file's parts into the file's own txt, vtt, srt and json.

Each part was transcribed as a file of its own, so its timestamps start at 0. Every segment is
shifted by its part's start and clamped to its part's range: parts abut at cuts made in pauses,
so segments come out in order, each exactly once, on the whole file's timeline. A part's segments
are read from its whisper JSON when it sent one (keeping whatever else the entries carry, such
as token timings, shifted too), else from its VTT (what legacy clients send), else its SRT.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from .vtt import Segment, clock, cues, segments_of_json


@dataclass(frozen=True)
class PartResult:
    start_ms: int
    end_ms: int
    files: dict[str, str]  # format -> text, as the part's client sent it
    meta: dict[str, Any] = field(default_factory=dict)


def segments(part: PartResult) -> list[Segment]:
    """The part's segments, on its own timeline (0 = the part's start)."""
    if "json" in part.files and (from_json := segments_of_json(part.files["json"])) is not None:
        return from_json
    for fmt in ("vtt", "srt"):
        if fmt in part.files:
            return cues(part.files[fmt])
    text = part.files.get("txt", "").strip()
    return [Segment(0, part.end_ms - part.start_ms, text)] if text else []


def _shift(entry: dict[str, Any], start: int, end: int, offset: int) -> dict[str, Any]:
    """A JSON entry (and its tokens and words) moved to the file's timeline."""
    out = copy.deepcopy(entry)
    inner = [
        t for key in ("tokens", "words") if isinstance(out.get(key), list) for t in out[key] if isinstance(t, dict)
    ]
    for item in [out, *inner]:
        offsets = item.get("offsets")
        if isinstance(offsets, dict) and {"from", "to"} <= offsets.keys():
            a = min(max(int(offsets["from"]), start), end) + offset
            b = min(max(int(offsets["to"]), start), end) + offset
            item["offsets"] = {"from": a, "to": b}
            if "timestamps" in item:
                item["timestamps"] = {"from": clock(a, ","), "to": clock(b, ",")}
    return out


def shifted(parts: Sequence[PartResult]) -> list[Segment]:
    """Every part's segments on the whole file's timeline, in order."""
    out: list[Segment] = []
    for part in sorted(parts, key=lambda p: p.start_ms):
        length = part.end_ms - part.start_ms
        for seg in segments(part):
            a = min(max(seg.start_ms, 0), length) + part.start_ms
            b = min(max(seg.end_ms, 0), length) + part.start_ms
            entry = None if seg.entry is None else _shift(seg.entry, 0, length, part.start_ms)
            out.append(Segment(a, max(a, b), seg.text, entry))
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
            "timestamps": {"from": clock(s.start_ms, ","), "to": clock(s.end_ms, ",")},
            "offsets": {"from": s.start_ms, "to": s.end_ms},
            "text": s.text,
        }
        for s in segs
    ]
    return json.dumps({**head, "transcription": transcription}, indent=2, ensure_ascii=False) + "\n"


def stitch(parts: Sequence[PartResult], language: Optional[str] = None) -> dict[str, bytes]:
    """The whole file's results in every format, from its parts' results."""
    segs = shifted(parts)
    vtt = "WEBVTT\n\n" + "".join(f"{clock(s.start_ms, '.')} --> {clock(s.end_ms, '.')}\n{s.text}\n\n" for s in segs)
    srt = "".join(
        f"{i}\n{clock(s.start_ms, ',')} --> {clock(s.end_ms, ',')}\n{s.text}\n\n" for i, s in enumerate(segs, 1)
    )
    txt = "".join(f"{s.text}\n" for s in segs)
    return {
        "txt": txt.encode(),
        "vtt": vtt.encode(),
        "srt": srt.encode(),
        "json": to_json(segs, parts, language).encode(),
    }
