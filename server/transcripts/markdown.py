"""A transcript as Markdown for people: a title, then paragraphs, each led by its start time.

Whisper's segments are a sentence or less; a paragraph runs on until a pause of PAUSE_MS or
MAX_PARAGRAPH_MS of speech, or until the speaker changes where the JSON names speakers.
"""

from __future__ import annotations

from typing import Any, Optional

from .vtt import Segment, clock, cues, segments_of_json

PAUSE_MS = 2000
MAX_PARAGRAPH_MS = 60_000


def _speaker(seg: Segment) -> Optional[str]:
    entry: dict[str, Any] = seg.entry or {}
    speaker = entry.get("speaker")
    return str(speaker) if speaker not in (None, "") else None


def to_markdown(title: str, files: dict[str, str]) -> str:
    """From the JSON when there is one (it may name speakers), else the VTT."""
    segs = segments_of_json(files["json"]) if "json" in files else None
    if segs is None:
        segs = cues(files.get("vtt", ""))
    lines = [f"# {title}", ""]
    paragraph: list[str] = []
    start = end = 0
    speaker: Optional[str] = None
    for seg in segs:
        text = seg.text.strip()
        if not text:
            continue
        turn = _speaker(seg)
        if paragraph and (seg.start_ms - end >= PAUSE_MS or seg.end_ms - start > MAX_PARAGRAPH_MS or turn != speaker):
            lines += [_paragraph(start, speaker, paragraph), ""]
            paragraph = []
        if not paragraph:
            start, speaker = seg.start_ms, turn
        paragraph.append(text)
        end = seg.end_ms
    if paragraph:
        lines += [_paragraph(start, speaker, paragraph), ""]
    return "\n".join(lines)


def _paragraph(start: int, speaker: Optional[str], texts: list[str]) -> str:
    who = f" **{speaker}:**" if speaker else ""
    return f"**[{clock(start, None)}]**{who} " + " ".join(texts)


def title_of(name: str) -> str:
    """The uploaded file's name without its extension, Markdown's own characters escaped."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return "".join("\\" + c if c in "\\`*_{}[]<>#|" else c for c in stem) or "Transcript"
