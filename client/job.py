"""One leased task on this machine: its work folder, its heartbeat, and the steps before whisper-cli
(download with resume, ffprobe, ffmpeg). With PREFETCH these run for the next task while
whisper-cli works on the current one, so the machine never idles between tasks."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

from . import media, transcribe
from .api import Lease, LeaseLost, ServerAPI, Transient
from .backoff import Backoff
from .heartbeat import Heartbeat

log = logging.getLogger("batch-stt.job")
Progress = Callable[[float], None]


@dataclass
class Job:
    lease: Lease
    work: Path
    heartbeat: Heartbeat
    cancel: threading.Event  # set when the lease is lost, or the task must stop
    timings: dict[str, float] = field(default_factory=dict)
    wav: Optional[Path] = None
    audio_seconds: float = 0.0
    error: Optional[Exception] = None  # what preparing ran into; reported when the job's turn comes
    handed_back: str = ""  # why this client gives the task back unfinished (courtesy.py)

    @classmethod
    def open(cls, api: ServerAPI, lease: Lease, work_dir: Path) -> Job:
        """Start heartbeating at once: a prefetched lease must stay alive while it waits its turn."""
        work = work_dir / lease.task_id
        work.mkdir(parents=True, exist_ok=True)
        cancel = threading.Event()
        heartbeat = Heartbeat(api, lease.token, lease.heartbeat_seconds, on_lost=cancel.set).start()
        return cls(lease, work, heartbeat, cancel)

    @property
    def name(self) -> str:
        return PurePosixPath(self.lease.path).name

    def prepare(self, api: ServerAPI, on_progress: Progress = lambda percent: None) -> Job:
        """Download and transcode; a failure is kept in `error`, never raised (this may run ahead)."""
        try:
            (self.work / "src").mkdir(exist_ok=True)  # under its own name, so error messages name it
            started = time.monotonic()
            src = self._download(api, self.work / "src" / self.name, on_progress)
            self.timings["download_seconds"] = time.monotonic() - started
            self.wav, self.audio_seconds, self.timings["transcode_seconds"] = transcribe.prepare_audio(
                src, self.work, self.lease.spot
            )
        except (media.MediaError, transcribe.Cancelled, LeaseLost, Transient, OSError) as e:
            self.error = e
        return self

    def _download(self, api: ServerAPI, dest: Path, on_progress: Progress) -> Path:
        backoff = Backoff(base=1.0, cap=60.0)
        for attempt in range(8):
            if self.cancel.is_set():
                raise transcribe.Cancelled("download stopped")
            try:
                return api.download(self.lease, dest, lambda done, total: on_progress(100 * done / max(total, 1)))
            except Transient as e:
                if attempt == 7:
                    raise
                delay = backoff.next_delay()
                log.info("download interrupted (%s); resuming in %.0f s", e, delay)
                self.cancel.wait(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.heartbeat.stop()
        shutil.rmtree(self.work, ignore_errors=True)
