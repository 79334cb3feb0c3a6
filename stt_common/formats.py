"""Transcript formats, model facts and time ranges as both sides show them."""

from __future__ import annotations

# What whisper-cli writes and the server stores, in the order the client requests them.
RESULT_FORMATS = ("txt", "vtt", "srt", "json")


def is_english_only(model_name: str) -> bool:
    """whisper.cpp's English-only models are named `*.en.bin` (or `*.en-q5_1.bin`, ...)."""
    return ".en." in model_name or model_name.endswith(".en.bin") or ".en-" in model_name


def hms(seconds: float) -> str:
    """`3725.9` -> `1:02:05`: a position in a file, as logs and the CLI show part ranges."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
