"""ffprobe, as both sides use it: the client before transcoding, the server to plan long files."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Optional


class ProbeError(ValueError):
    """ffprobe cannot tell this file's duration: not audio/video, or corrupt."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise FileNotFoundError(
            f"{name} not found: install ffmpeg (apt/dnf/pacman install ffmpeg, brew install ffmpeg)"
        )
    return path


def probe_seconds(path: Path, preexec_fn: Optional[Callable[[], None]] = None, timeout: float = 120) -> float:
    """The container's duration in seconds; reads headers only, never decodes the whole file."""
    r = subprocess.run(
        [tool("ffprobe"), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        preexec_fn=preexec_fn,
    )
    try:
        seconds = float(r.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        raise ProbeError(
            f"ffprobe cannot read {path.name}: not an audio/video file, or corrupt", tail(r.stderr)
        ) from None
    if seconds <= 0:
        raise ProbeError(f"{path.name} has no duration", tail(r.stderr))
    return seconds
