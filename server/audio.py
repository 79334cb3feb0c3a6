"""Serving a task's audio file: streamed from disk, with HTTP Range, never outside AUDIO_DIR."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from fastapi import HTTPException
from fastapi.responses import FileResponse

from .context import Context
from .paths import UnsafePath, safe_join

mimetypes.add_type("audio/mpeg", ".mp3")
mimetypes.add_type("audio/ogg", ".opus")
mimetypes.add_type("audio/x-matroska", ".mkv")


def audio_response(ctx: Context, task_id: str, path: str, headers: dict[str, str] | None = None) -> FileResponse:
    try:
        full = safe_join(ctx.settings.audio_dir, path)
    except UnsafePath:
        raise HTTPException(410, "audio file is no longer servable") from None
    if not full.is_file():
        ctx.ledger.mark_missing(task_id)
        raise HTTPException(410, "audio file is gone from the server")
    suffix = PurePosixPath(path).suffix.lower()
    media_type = mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"
    return FileResponse(full, media_type=media_type, filename=f"{task_id}{suffix}", headers=headers)
