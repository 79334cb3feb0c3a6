"""The only place that turns a stored relative path into a real one, inside its base folder."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path, PurePosixPath

# What the scanner takes for audio or video (and what no result may ever be named).
MEDIA_EXTENSIONS = frozenset(
    [".mp3", ".wav", ".m4a", ".flac", ".ogg", ".opus", ".aac", ".wma", ".mp4", ".mkv", ".webm", ".mov", ".avi"]
)


class UnsafePath(ValueError):
    pass


@lru_cache(maxsize=64)
def _resolved(base: Path) -> str:
    """The base folders (AUDIO_DIR, RESULTS_DIR) are resolved once per process: on the hot path."""
    return os.path.realpath(base)


def safe_join(base: Path, relative: str) -> Path:
    """`base/relative`, refusing anything that is, or resolves (through symlinks) to, outside base."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise UnsafePath(f"refused path {relative!r}")
    rel = PurePosixPath(relative)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts):
        raise UnsafePath(f"refused path {relative!r}")
    root = _resolved(base)
    # realpath resolves what exists (the file, a dangling symlink's target, or the folders of a file
    # still to be written) and keeps the rest: one call on strings, on every result's hot path.
    real = os.path.realpath(os.path.join(root, *rel.parts))
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise UnsafePath(f"{relative!r} points outside {base}")
    return Path(real)
