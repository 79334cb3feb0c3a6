"""Uploaded jobs on disk: the upload stored in its own folder (streamed, never whole in memory) and
checked with ffprobe, and a finished job's transcript in the format asked for."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import IO, Any, Optional

from stt_common.files import fsync_dir
from stt_common.media import ProbeError, probe_seconds

from ..ledger import task_id_for
from ..transcripts import markdown
from .layout import JOB_RESULT

_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+")


class NotMedia(Exception):
    """The upload is not audio or video (ffprobe's reason in the message)."""


def new_job_id() -> str:
    return task_id_for(f"jobs/{uuid.uuid4().hex}")


MAX_NAME_BYTES = 200  # the name kept as metadata (the job's filename, its Markdown title)
_EXTENSION = re.compile(r"^\.[a-z0-9]{1,10}$")


def safe_name(filename: Optional[str]) -> str:
    """The uploaded name as the job shows it: no folders, no control or shell characters, at most
    MAX_NAME_BYTES of UTF-8 (84 CJK characters are 252 bytes) with its extension kept."""
    name = _UNSAFE.sub("_", Path((filename or "").replace("\\", "/")).name).strip(" .") or "upload"
    if len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and stem and len(ext.encode()) <= 16 else ""
        keep = MAX_NAME_BYTES - len(ext.encode()) - len(dot if ext else "")
        stem = (stem if ext else name).encode()[:keep].decode(errors="ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name


def stored_name(name: str) -> str:
    """What the upload is stored as: `source` and its extension (which the cut of a part keeps), so
    no uploaded name reaches the file system and none can be a result's (`result.vtt`)."""
    ext = Path(name).suffix.lower()
    return f"source{ext if _EXTENSION.match(ext) else ''}"


def store(folder: Path, name: str, source: IO[bytes]) -> tuple[Path, float]:
    """Copy the spooled upload into the job's new folder as stored_name(name), then probe it:
    (path, seconds). Not media -> NotMedia, which names the upload as it came (never a server
    path), and nothing is kept."""
    folder.mkdir(parents=True)
    dest = folder / stored_name(name)
    try:
        with open(dest, "wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        fsync_dir(folder)
        try:
            seconds = probe_seconds(dest)
        except ProbeError as e:
            said = f"{e}: {e.stderr_tail.strip()}" if e.stderr_tail.strip() else str(e)
            raise NotMedia(said.replace(str(dest), name).replace(dest.name, name)) from None
        if seconds <= 0:
            raise NotMedia(f"{name} has no audio (ffprobe reports no duration)")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return dest, seconds


def meta(folder: Path) -> dict[str, Any]:
    """A done job's result metadata ({} if it cannot be read)."""
    try:
        data = json.loads((folder / f"{JOB_RESULT}.meta.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def transcript(folder: Path, filename: str, fmt: str) -> str:
    """A done job's transcript; `md` is made from the JSON (or the VTT)."""
    if fmt != "md":
        return (folder / f"{JOB_RESULT}.{fmt}").read_text(encoding="utf-8")
    files = {
        f: (folder / f"{JOB_RESULT}.{f}").read_text(encoding="utf-8")
        for f in ("json", "vtt")
        if (folder / f"{JOB_RESULT}.{f}").is_file()
    }
    return markdown.to_markdown(markdown.title_of(filename), files)
