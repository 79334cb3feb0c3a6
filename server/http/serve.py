"""Audio as an HTTP response: with Range (resumable downloads), its type from its container."""

from __future__ import annotations

import mimetypes
from typing import Optional

from fastapi.responses import FileResponse

from ..disk.audio import AudioFile
from ..ledger import TaskView

mimetypes.add_type("audio/mpeg", ".mp3")
mimetypes.add_type("audio/ogg", ".opus")
mimetypes.add_type("audio/x-matroska", ".mkv")


def audio_response(audio: AudioFile, task: TaskView, headers: Optional[dict[str, str]] = None) -> FileResponse:
    suffix = audio.path.suffix.lower()  # a part's cut may be in another container than its file
    media_type = mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"
    return FileResponse(
        audio.path, media_type=media_type, filename=f"{task.id}{suffix}", headers=headers, stat_result=audio.stat
    )
