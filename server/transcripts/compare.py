"""Do two transcripts of the same audio say the same thing? Their words, normalised (case,
punctuation, non-speech markers such as [MUSIC]), within a word error rate of each other (jiwer),
counted against each in turn. Pure text: validation's judge."""

from __future__ import annotations

import re

import jiwer

from .vtt import vtt_to_text

_MARKERS = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_NOT_WORD = re.compile(r"[^\w\s']+")


def words(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", _MARKERS.sub(" ", text.lower())).split())


def distance(a: str, b: str) -> float:
    """The larger of WER(a -> b) and WER(b -> a) of the normalised words; 0 for two silences."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return 0.0 if wa == wb else 1.0
    return max(jiwer.wer(wa, wb), jiwer.wer(wb, wa))


def text_of(files: dict[str, str]) -> str:
    """A result's plain text: its txt, else its VTT's (what legacy clients send)."""
    if "txt" in files:
        return files["txt"]
    return vtt_to_text(files.get("vtt", ""))
