"""ffprobe and ffmpeg: every input becomes 16 kHz mono PCM WAV before whisper-cli sees it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .subproc import die_with_parent


class MediaError(Exception):
    """The file cannot be decoded: a property of the file, not of this machine."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise FileNotFoundError(
            f"{name} not found: install ffmpeg (apt/dnf/pacman install ffmpeg, brew install ffmpeg)"
        )
    return path


def duration(path: Path) -> float:
    r = subprocess.run(
        [tool("ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        preexec_fn=die_with_parent,
    )
    try:
        seconds = float(r.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        raise MediaError(
            f"ffprobe cannot read {path.name}: not an audio/video file, or corrupt", _tail(r.stderr)
        ) from None
    if seconds <= 0:
        raise MediaError(f"{path.name} has no duration", _tail(r.stderr))
    return seconds


def to_wav(src: Path, dest: Path) -> Path:
    """Transcode to what whisper.cpp wants; streams from disk to disk (flat memory)."""
    r = subprocess.run(
        [
            tool("ffmpeg"),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
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
        raise MediaError(f"ffmpeg cannot decode {src.name} (rc {r.returncode})", _tail(r.stderr))
    return dest
