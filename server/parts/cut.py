"""A part's audio: its range of the file, cut by ffmpeg stream copy (no re-encode, so it costs
the server a file copy, not a decode) into a cache. The same bytes are served on every request,
so the lease's size and SHA-256 hold and HTTP Range resumes work.

A speaker's part is its stream alone (still a stream copy), or its channel alone: that one is
decoded and written as 16 kHz mono FLAC, what whisper reads anyway, so it stays small. Any client,
legacy ones too, just sees a mono file.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path, PurePosixPath

from stt_common.media import tail, tool

from ..disk.audio import AudioFile
from ..ledger import TaskView

# Containers that take their own codec back by stream copy; anything else (video, m4a, ogg...)
# goes into Matroska, which holds every audio codec.
FORMATS = {".mp3": "mp3", ".wav": "wav", ".flac": "flac"}


class CutError(Exception):
    """ffmpeg could not cut the range out of the file: a property of the file."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


def cut_path(folder: Path, part: TaskView) -> Path:
    """Named by the source's size and mtime too: a replaced file never serves an old cut."""
    suffix = PurePosixPath(part.path).suffix.lower()
    ext = ".flac" if part.channel is not None else suffix if suffix in FORMATS else ".mka"
    return folder / f"{part.id}-{part.size}-{int(part.mtime * 1e6)}{ext}"


def remove_cuts(folder: Path) -> None:
    """The cut audio in a file's folder, not the parts' results beside it (kept for re-checks)."""
    for path in folder.glob("*-*-*.*"):
        if path.suffix in (*FORMATS, ".mka"):
            path.unlink(missing_ok=True)


def cut(source: AudioFile, folder: Path, part: TaskView) -> AudioFile:
    assert part.start_ms is not None and part.end_ms is not None
    dest = cut_path(folder, part)
    if not dest.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        length = [] if part.end_ms >= (part.duration_ms or 0) else ["-t", f"{(part.end_ms - part.start_ms) / 1000:.3f}"]
        codec = ["-c", "copy"] if part.channel is None else [
            "-af", f"pan=mono|c0=c{part.channel}", "-ar", "16000", "-c:a", "flac"]  # fmt: skip
        seek = ["-ss", f"{part.start_ms / 1000:.3f}"]
        # Seeking a container's index with stream copy lands on its last cue point before (Matroska: seconds
        # early); skipping packets up to the start as they are read is exact, and reading costs no decode.
        exact = codec[-1] == "copy" and dest.suffix not in FORMATS
        # fmt: off
        cmd = [tool("ffmpeg"), "-nostdin", "-v", "error", "-y", *([] if exact else seek), "-i", str(source.path),
               *(seek if exact else []), *length, "-map", f"0:a:{part.stream or 0}", *codec, "-map_metadata", "-1",
               "-f", FORMATS.get(dest.suffix, "matroska"), str(tmp)]
        # fmt: on
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
            if r.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
                raise CutError(
                    f"cannot cut {part.start_ms / 1000:.1f}-{part.end_ms / 1000:.1f} s out of the file", tail(r.stderr)
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    return AudioFile(dest, dest.stat())
