"""Word timings for the result's JSON, from the token timings whisper-cli writes with `-ojf`.

Tokens are pieces of words (" Amer", "icans", ","): a token that starts with a space starts a word,
the others continue it; whisper's special tokens (`[_BEG_]`, `[_TT_150]`) are not words. Each
segment gets `words`: [{"word", "offsets": {"from", "to"} (ms), "p"}], on the same timeline as its
`offsets`, so the server's stitcher moves them with the segment.
"""

from __future__ import annotations

import json
from typing import Any


def _is_special(text: str) -> bool:
    return text.startswith("[_") and text.endswith("]")


def words_of(tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    words: list[dict[str, Any]] = []
    for t in tokens:
        text, offsets = t.get("text", ""), t.get("offsets") or {}
        if not text or _is_special(text) or "from" not in offsets or "to" not in offsets:
            continue
        p = float(t.get("p", 0.0))
        if words and not text.startswith(" "):
            w = words[-1]
            w["word"] += text
            w["offsets"]["to"] = offsets["to"]
            w["p"] = min(w["p"], p)
        elif text.strip():
            words.append({"word": text.strip(), "offsets": dict(offsets), "p": p})
    for w in words:
        w["p"] = round(w["p"], 3)
    return words


def add_words(data: bytes) -> bytes:
    """whisper-cli's JSON with `words` in every segment that has tokens; other JSON unchanged."""
    try:
        doc = json.loads(data)
        segments = doc["transcription"]
    except (ValueError, KeyError, TypeError):
        return data
    timed = [seg for seg in segments if isinstance(seg, dict) and isinstance(seg.get("tokens"), list)]
    if not timed:
        return data
    for seg in timed:
        seg["words"] = words_of(seg["tokens"])
    return json.dumps(doc, ensure_ascii=False, indent=1).encode()
