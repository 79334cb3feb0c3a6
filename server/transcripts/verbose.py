"""OpenAI's `verbose_json` from a stored transcript: whisper-cli's JSON (`-ojf`, with token
probabilities and the client's `words`) reshaped as OpenAI's transcription object, times in seconds.

What whisper-cli does not report is left out rather than made up: no `no_speech_prob`; and
`temperature` is the one asked for (whisper's first, 0.0, by default), as a result without
fallback used it. Where a file's speakers were transcribed apart, each segment and word has a
`speaker` besides OpenAI's fields.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable
from typing import Any, Optional

# fmt: off
LANGUAGE_NAMES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese",
    "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy",
    "as": "assamese", "tt": "tatar", "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese",
    "su": "sundanese",
}
# fmt: on


def language_name(code: Optional[str]) -> str:
    """OpenAI's name of a language ("english", "haitian creole")."""
    return LANGUAGE_NAMES.get((code or "").lower(), code or "unknown")


def _seconds(ms: Any) -> float:
    return round(float(ms) / 1000.0, 3)


def _real_tokens(entry: dict[str, Any]) -> list[dict[str, Any]]:
    tokens = entry.get("tokens")
    if not isinstance(tokens, list):
        return []
    return [t for t in tokens if isinstance(t, dict) and not str(t.get("text", "")).startswith("[_")]


def _segment(number: int, entry: dict[str, Any], temperature: float) -> dict[str, Any]:
    text = str(entry.get("text", ""))
    offsets = entry.get("offsets") or {}
    tokens = _real_tokens(entry)
    seg: dict[str, Any] = {
        "id": number,
        "seek": 0,
        "start": _seconds(offsets.get("from", 0)),
        "end": _seconds(offsets.get("to", 0)),
        "text": text,
        "tokens": [int(t["id"]) for t in tokens if isinstance(t.get("id"), int)],
        "temperature": temperature,
    }
    if entry.get("speaker") is not None:
        seg["speaker"] = str(entry["speaker"])
    probabilities = [float(t["p"]) for t in tokens if isinstance(t.get("p"), (int, float))]
    if probabilities:
        seg["avg_logprob"] = round(sum(math.log(max(p, 1e-10)) for p in probabilities) / len(probabilities), 4)
    raw = text.encode()
    if raw:
        seg["compression_ratio"] = round(len(raw) / len(zlib.compress(raw)), 4)
    return seg


def _words(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        for w in entry.get("words") or []:
            offsets = (w.get("offsets") if isinstance(w, dict) else None) or {}
            if isinstance(offsets, dict) and {"from", "to"} <= offsets.keys():
                out.append({"word": str(w.get("word", "")), "start": _seconds(offsets["from"]),
                            "end": _seconds(offsets["to"])})  # fmt: skip
                if w.get("speaker") is not None:
                    out[-1]["speaker"] = str(w["speaker"])
    return out


def entries_of(whisper_json: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(whisper_json)
        entries = doc["transcription"]
    except (ValueError, KeyError, TypeError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def plain_text(entries: list[dict[str, Any]]) -> str:
    return " ".join(t for e in entries if (t := str(e.get("text", "")).strip()))


def verbose_json(
    whisper_json: str, *, task: str, language: Optional[str], duration: float, words: bool, temperature: float = 0.0
) -> dict[str, Any]:
    """Segments always (they cost nothing here), `words` when timestamp_granularities[] has "word"."""
    entries = entries_of(whisper_json)
    out: dict[str, Any] = {
        "task": task,
        "language": language_name(language),
        "duration": round(duration, 3),
        "text": plain_text(entries),
    }
    out["segments"] = [_segment(i, e, temperature) for i, e in enumerate(entries)]
    if words:
        out["words"] = _words(entries)
    return out
