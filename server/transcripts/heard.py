"""A speaker's segments kept to where its own track is heard (parts/voice.py measures that): whisper,
given one speaker's track, also transcribes the others' voices leaking into it and invents words in
its silences, and starts a segment at the beginning of the silence before it.

A track's frames are QUIET, its speaker's VOICE, or LEAK: sound that is another speaker's. Words
(the client's word timings) are judged one by one: a word is dropped where its track has only
another's sound, never for falling in a quiet stretch (whisper times the first words after a
silence seconds early). A segment is kept only where its track has the voice, and starts there; a
segment without word timings (a legacy client's VTT) is kept or dropped whole.
"""

from __future__ import annotations

from typing import Any, Optional

from .vtt import Segment, timing

VOICE_FRAME_MS = 100  # the frames of a track's `heard` map
QUIET, VOICE, LEAK = 0, 1, 2
MIN_HEARD_MS = 300  # less than this heard under a segment: not this speaker's
WORD_SLACK_MS = 300  # whisper's word timings are this far off, and a short word may fall in a dip


def _frames(a: int, b: int) -> range:
    first = a // VOICE_FRAME_MS
    return range(first, max(first + 1, -(-b // VOICE_FRAME_MS)))


def within_heard(a: int, b: int, frames: Optional[bytes]) -> Optional[tuple[int, int]]:
    """[a, b) narrowed to where the track is heard; None where it is not (long enough) at all."""
    if frames is None or a // VOICE_FRAME_MS >= len(frames):
        return a, b  # not measured (or past what was): as whisper says
    on = [i for i in _frames(a, b) if i < len(frames) and frames[i] == VOICE]
    if len(on) * VOICE_FRAME_MS < MIN_HEARD_MS:
        return None
    return max(a, on[0] * VOICE_FRAME_MS), min(b, (on[-1] + 1) * VOICE_FRAME_MS)


def _offsets(item: Any) -> Optional[tuple[int, int]]:
    offsets = item.get("offsets") if isinstance(item, dict) else None
    if isinstance(offsets, dict) and isinstance(offsets.get("from"), int) and isinstance(offsets.get("to"), int):
        return offsets["from"], offsets["to"]
    return None


def _word_heard(span: tuple[int, int], frames: bytes) -> bool:
    """False only for a word where the track has another's sound and not its own speaker's."""
    around = [frames[i] for i in _frames(max(0, span[0] - WORD_SLACK_MS), span[1] + WORD_SLACK_MS) if i < len(frames)]
    return VOICE in around or LEAK not in around


def _heard_words(seg: Segment, frames: bytes) -> Optional[Segment]:
    """The segment with only its words that are heard; None when none is."""
    found = (seg.entry or {}).get("words")
    words: list[Any] = found if isinstance(found, list) else []
    spans = [_offsets(w) for w in words]
    if not spans or None in spans:
        return seg
    kept = [(w, span) for w, span in zip(words, spans, strict=True) if span and _word_heard(span, frames)]
    if len(kept) == len(spans):
        return seg
    if not kept:
        return None
    a = max(seg.start_ms, kept[0][1][0])
    b = max(a, min(seg.end_ms, kept[-1][1][1]))
    text = " " + " ".join(str(w.get("word", "")) for w, _ in kept)
    tokens = [t for t in (seg.entry or {}).get("tokens") or [] if (o := _offsets(t)) is None or a <= o[0] <= b]
    entry = {**(seg.entry or {}), **timing(a, b), "text": text, "words": [w for w, _ in kept], "tokens": tokens}
    return Segment(a, b, text, entry, seg.speaker)


def only_heard(seg: Segment, frames: Optional[bytes]) -> Optional[Segment]:
    """What of a speaker's segment its track has: its heard words, from where it is heard; None: nothing."""
    if frames is None:
        return seg
    if (kept := _heard_words(seg, frames)) is None:
        return None
    span = within_heard(kept.start_ms, kept.end_ms, frames)
    if span is None:
        return None
    if span == (kept.start_ms, kept.end_ms):
        return kept
    entry = None if kept.entry is None else {**kept.entry, **timing(*span)}
    return Segment(span[0], span[1], kept.text, entry, kept.speaker)
