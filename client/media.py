"""ffprobe and ffmpeg: every input becomes 16 kHz mono PCM WAV before whisper-cli sees it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

from stt_common.media import ProbeError, probe_seconds, tail, tool

from .subproc import die_with_parent


class MediaError(Exception):
    """The file cannot be decoded: a property of the file, not of this machine."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


def duration(path: Path) -> float:
    try:
        return probe_seconds(path, preexec_fn=die_with_parent)
    except ProbeError as e:
        raise MediaError(str(e), e.stderr_tail) from None


def to_wav(src: Path, dest: Path, spot: Optional[tuple[float, float]] = None) -> Path:
    """Transcode to what whisper.cpp wants; streams from disk to disk (flat memory). `spot`: only
    that range (seconds; decoding skips what comes before it exactly, not from a key frame)."""
    trim = ["-ss", f"{spot[0]:.3f}", "-t", f"{spot[1] - spot[0]:.3f}"] if spot else []
    r = subprocess.run(
        [
            tool("ffmpeg"),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *trim,
            "-i",
            str(src),
            "-vn",
            "-ar",
            "16000",
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            str(dest),
        ],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=6 * 3600,
        preexec_fn=die_with_parent,
    )
    if r.returncode != 0 or not dest.exists() or dest.stat().st_size <= 44:
        raise MediaError(f"ffmpeg cannot decode {src.name} (rc {r.returncode})", tail(r.stderr))
    return dest
