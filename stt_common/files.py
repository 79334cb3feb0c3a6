"""File helpers whose correctness matters on both sides: checksums and durable renames."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the file's own fsync does not cover its directory entry)."""
    fsync_path(path)


def write_new(path: Path, data: bytes, flush: bool = True) -> None:
    """A file at `path` (never one followed through a symlink) whose bytes are on disk; `flush=False`:
    the caller flushes it (several files flushed at once share the file system's journal commits)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        if flush:
            f.flush()
            os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """`path` holds the old bytes or all the new ones, whatever crashes when. The caller fsyncs the
    folder (once for a set of files) to make the rename itself durable."""
    # Unique to this process and thread: two writers never share one (mkstemp's retries cost more).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
