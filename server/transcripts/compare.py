"""Do two transcripts of the same audio say the same thing? Their words, normalised (case,
punctuation, non-speech markers such as [MUSIC]), within a word error rate of each other (jiwer),
counted against each in turn. A spot check transcribed one range of the audio: there, each side's
words well inside the range must be a stretch of the other's words around it (its edges are where a
cut word or a cue's rough timing may fall either way). Pure text: validation's judge."""

from __future__ import annotations

import re

import jiwer

from .vtt import cues, vtt_to_text

# A word within this many seconds of a spot check's edge may be on either side of it: a cue's words
# are timed by spreading them over the cue, and the check's audio starts and ends mid-word.
EDGE_SECONDS = 4.0
# Nobody says more words a second: a range with more is not speech, and its comparison (quadratic
# in the words, under the task's lock) is not worth doing.
MAX_WORDS_PER_SECOND = 10
Timed = list[tuple[float, str]]  # each word with when it is said, in seconds of the task's audio

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


def timed_words(files: dict[str, str], span: float, shift: float = 0.0) -> Timed:
    """A result's words, each timed within its VTT cue (spread evenly over it), `shift` seconds
    later (a spot check's range starts there); without a VTT, spread over `span` seconds."""
    if "vtt" not in files:
        found = words(text_of(files)).split()
        return [(shift + span * (i + 0.5) / len(found), w) for i, w in enumerate(found)]
    out: Timed = []
    for cue in cues(files["vtt"]):
        found = words(cue.text).split()
        length = (cue.end_ms - cue.start_ms) / 1000
        out += [(shift + cue.start_ms / 1000 + length * (i + 0.5) / len(found), w) for i, w in enumerate(found)]
    return out


def spot_distance(a: Timed, b: Timed, start: float, end: float) -> float:
    """Over the range [start, end], the larger of either way's edits that make one side's words well
    inside the range a stretch of the other's words around it, per word; 0 for two silences."""

    most = MAX_WORDS_PER_SECOND * (end - start + 2 * EDGE_SECONDS)

    def one_way(inner: Timed, around: Timed) -> float:
        mine = [w for t, w in inner if start + EDGE_SECONDS <= t <= end - EDGE_SECONDS]
        theirs = [w for t, w in around if start - EDGE_SECONDS <= t <= end + EDGE_SECONDS]
        if len(mine) > most or len(theirs) > most:
            return 1.0
        return _within(mine, theirs) / len(mine) if mine else 0.0

    return max(one_way(a, b), one_way(b, a))


def _within(a: list[str], b: list[str]) -> int:
    """Edits that make `a` a stretch of `b` (b's words before and after the stretch are free)."""
    prev = [0] * (len(b) + 1)
    for i, word in enumerate(a, 1):
        cur = [i] * (len(b) + 1)
        for j, other in enumerate(b, 1):
            cur[j] = min(prev[j - 1] + (word != other), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return min(prev)
