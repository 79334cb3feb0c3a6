"""Serving a task's audio file: streamed from disk, with HTTP Range, never outside AUDIO_DIR."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from fastapi import HTTPException
from fastapi.responses import FileResponse

from .context import Context
from .leases import TaskView
from .paths import UnsafePath, safe_join

mimetypes.add_type("audio/mpeg", ".mp3")
mimetypes.add_type("audio/ogg", ".opus")
mimetypes.add_type("audio/x-matroska", ".mkv")


def audio_response(ctx: Context, task: TaskView, headers: dict[str, str] | None = None,
                   check_unchanged: bool = True) -> FileResponse:
    try:
        full = safe_join(ctx.settings.audio_dir, task.path)
    except UnsafePath:  # e.g. swapped for a symlink pointing outside AUDIO_DIR since the scan
        raise HTTPException(410, "audio file is no longer servable") from None
    if not full.is_file():
        ctx.ledger.mark_missing(task.id)
        raise HTTPException(410, "audio file is gone from the server")
    st = full.stat()
    if check_unchanged and (st.st_size, st.st_mtime) != (task.size, task.mtime):
        # Replaced under the same name: the lease's size and SHA-256 no longer hold.
        ctx.ledger.file_changed(task.id, st.st_size, st.st_mtime)
        raise HTTPException(409, "audio file changed since it was leased; the lease was handed back, ask again")
    suffix = PurePosixPath(task.path).suffix.lower()
    media_type = mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"
    return FileResponse(full, media_type=media_type, filename=f"{task.id}{suffix}", headers=headers, stat_result=st)
