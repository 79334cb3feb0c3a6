"""Writing transcripts to RESULTS_DIR so that a crash leaves the old state or the whole new one."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stt_common.files import fsync_dir
from stt_common.formats import RESULT_FORMATS

from .paths import safe_join

_TIMING = re.compile(r"^\s*(\d+:)?\d+:\d+[.,]\d+\s*-->")


def vtt_to_text(vtt: str) -> str:
    """Plain text from WebVTT: one line per cue, headers, cue ids and timings dropped."""
    lines: list[str] = []
    cue: list[str] = []
    for line in vtt.splitlines():
        line = line.strip()
        if _TIMING.match(line):
            cue = []
            continue
        if not line:
            if cue:
                lines.append(" ".join(cue))
            cue = []
            continue
        if line.startswith("WEBVTT") or line.startswith("NOTE") or (line.isdigit() and not cue):
            continue
        cue.append(line)
    if cue:
        lines.append(" ".join(cue))
    return "\n".join(lines) + ("\n" if lines else "")


def _write_atomic(path: Path, data: bytes) -> None:
    # Unique to this process and thread: two writers never share one (mkstemp's retries cost more).
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result(results_dir: Path, stem: str, files: Mapping[str, bytes], meta: dict[str, Any]) -> list[Path]:
    """Write each format of `results_dir/stem`, then `.meta.json` last: its presence marks a complete set."""
    meta = {**meta, "formats": sorted(files)}
    # One check that the set's folder lies inside RESULTS_DIR; the renames below never follow a
    # symlink planted at a result's name, so the siblings need no check of their own.
    meta_path = safe_join(results_dir, f"{stem}.meta.json")
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    name = meta_path.name[: -len(".meta.json")]
    written = []
    for fmt, data in files.items():
        if fmt not in RESULT_FORMATS:
            raise ValueError(f"unknown result format {fmt!r}")
        target = meta_path.with_name(f"{name}.{fmt}")
        _write_atomic(target, data)
        written.append(target)
    _write_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True).encode())
    written.append(meta_path)
    fsync_dir(meta_path.parent)  # make the renames themselves durable
    return written


def remove_stale_temps(results_dir: Path) -> int:
    """Temp files a crash left mid-write were never acknowledged: remove them at start."""
    removed = 0
    for dirpath, _, filenames in os.walk(results_dir):
        for name in filenames:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed
