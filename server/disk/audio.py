"""Finding a task's audio file on disk, never outside its folder (http/serve.py serves it).

Raises domain errors only; what they mean for the task (missing, changed) is context.py's call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..ledger import TaskView
from .paths import UnsafePath, safe_join


class AudioGone(Exception):
    """The file vanished, or became something that may not be served (a symlink leading out)."""


class AudioChanged(Exception):
    """Replaced under the same name since it was leased: the lease's size and SHA-256 no longer hold."""

    def __init__(self, size: int, mtime: float):
        super().__init__("audio file changed since it was leased; the lease was handed back, ask again")
        self.size, self.mtime = size, mtime


@dataclass(frozen=True)
class AudioFile:
    path: Path
    stat: os.stat_result


def locate(audio_dir: Path, task: TaskView, check_unchanged: bool = True) -> AudioFile:
    try:
        full = safe_join(audio_dir, task.path)
    except UnsafePath:
        raise AudioGone("audio file is no longer servable") from None
    if not full.is_file():
        raise AudioGone("audio file is gone from the server")
    st = full.stat()
    if check_unchanged and (st.st_size, st.st_mtime) != (task.size, task.mtime):
        raise AudioChanged(st.st_size, st.st_mtime)
    return AudioFile(full, st)
