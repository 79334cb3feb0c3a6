"""A split file's results, written from its parts' once they are all done (transcripts/join.py
does the text), and the file marked done.

Crash-safe: each result file is replaced atomically and `.meta.json` is written last; the file stays
`split` until then, so the housekeeping loop stitches it again.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from typing import Any, Optional

from ..disk import UnsafePath
from ..disk.layout import Layout
from ..disk.results import ResultLayout
from ..ledger import Ledger, PartView, TaskState, TaskView
from ..transcripts.join import PartResult, stitch
from . import voice
from .cut import remove_cuts

log = logging.getLogger("batch-stt.stitch")
PER_PART = ("protocol", "model", "backend", "audio_seconds", "processing_seconds")


class Stitcher:
    def __init__(self, ledger: Ledger, layout: Layout, keep_parts: bool = False):
        self.ledger = ledger
        self.layout = layout
        # While results are validated, the parts' results stay: a part a trusted host delivered unchecked
        # is checked again if that host is later outvoted, and the file stitched anew.
        self.keep_parts = keep_parts
        self._lock = threading.Lock()  # a route's stitch and the housekeeping loop's never overlap

    def stitch(self, file_id: str) -> bool:
        """False: not ready (or stitched already)."""
        with self._lock:
            file = self.ledger.reports.task(file_id)
            parts = self.ledger.parts.of(file_id)
            if file.state != TaskState.SPLIT or not parts or any(p.state != TaskState.DONE for p in parts):
                return False
            folder = self.layout.part_folder(file_id)
            stored = ResultLayout(folder)
            loaded = []
            for p in parts:
                meta, texts = stored.read(p.id)
                loaded.append(PartResult(p.start_ms, p.end_ms, texts, meta, p.speaker))
            language = next((r.meta["language"] for r in loaded if r.meta.get("language")), None)
            seconds = audio_seconds(parts, loaded)
            meta = stitched_meta(file, parts, loaded, language, seconds)
            heard = self.heard(file, parts)
            self.layout.results_of(file).write(file.result_stem, stitch(loaded, language, heard), meta)
            if self.ledger.parts.mark_stitched(file_id, seconds):
                if self.keep_parts:
                    remove_cuts(folder)
                else:
                    shutil.rmtree(folder, ignore_errors=True)
            return True

    def heard(self, file: TaskView, parts: Sequence[PartView]) -> dict[str, bytes]:
        """Where each speaker's track has its voice (none for a file of one speaker, or gone meanwhile)."""
        tracks = {p.speaker: (p.stream or 0, p.channel) for p in parts if p.speaker is not None}
        if not tracks:
            return {}
        try:
            source = self.layout.audio_path(file)
            return voice.heard(source, tracks)
        except (OSError, UnsafePath):  # no ffmpeg here: whisper's timings as they are
            return {}

    def try_stitch(self, file_id: str) -> bool:
        """stitch(), logging a failure: the file stays `split` and the housekeeping loop tries again."""
        try:
            return self.stitch(file_id)
        except (OSError, ValueError, KeyError) as e:
            log.error("cannot stitch %s yet: %s", file_id, e)
            return False

    def ready(self) -> int:
        """Stitch every file whose parts are all done (after a crash, or a stitch that failed)."""
        return sum(self.try_stitch(file_id) for file_id in self.ledger.parts.ready())


def audio_seconds(parts: Sequence[PartView], loaded: Sequence[PartResult]) -> float:
    """The file's audio, once however many speakers' tracks it was transcribed as (the longest's)."""
    per_track: dict[Optional[str], float] = {}
    for p, r in zip(parts, loaded, strict=True):
        seconds = r.meta.get("audio_seconds") or (r.end_ms - r.start_ms) / 1000
        per_track[p.speaker] = per_track.get(p.speaker, 0.0) + seconds
    return max(per_track.values())


def stitched_meta(
    file: TaskView, parts: Sequence[PartView], loaded: Sequence[PartResult], language: Any, seconds: float
) -> dict[str, Any]:
    """The file's `.meta.json`: totals, its speakers (when they were apart), and each part's range,
    speaker, cut, host and own figures."""
    return {
        "protocol": "stitched",
        "task_id": file.id,
        "path": file.path,
        "language": language,
        "audio_seconds": round(seconds, 3),
        "processing_seconds": round(sum(r.meta.get("processing_seconds") or 0 for r in loaded), 3),
        "clients": sorted({p.client for p in parts if p.client}),
        "speakers": list(dict.fromkeys(p.speaker for p in parts if p.speaker is not None)),
        "parts": [
            {
                "task_id": p.id,
                "start_ms": p.start_ms,
                "end_ms": p.end_ms,
                **({"speaker": p.speaker} if p.speaker is not None else {}),
                "cut": p.note,
                "client": p.client,
                **{k: r.meta.get(k) for k in PER_PART},
            }
            for p, r in zip(parts, loaded, strict=True)
        ],
    }
