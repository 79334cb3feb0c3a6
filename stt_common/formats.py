"""Transcript formats and model facts both sides must agree on."""

from __future__ import annotations

# What whisper-cli writes and the server stores, in the order the client requests them.
RESULT_FORMATS = ("txt", "vtt", "srt", "json")


def is_english_only(model_name: str) -> bool:
    """whisper.cpp's English-only models are named `*.en.bin` (or `*.en-q5_1.bin`, ...)."""
    return ".en." in model_name or model_name.endswith(".en.bin") or ".en-" in model_name
