"""The server's one object: settings, ledger, auth and events, built once per app (no module state),
and the few operations that combine them (the service layer between routes and the ledger)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

from fastapi.concurrency import run_in_threadpool

from stt_common.files import sha256_file

from .auth import Authenticator
from .disk import audio, results, scanner
from .disk.paths import safe_join
from .ledger import Grant, Ledger, ScanReport, TaskState, TaskView
from .ledger.events import EventLog
from .ops.metrics import Metrics
from .ops.notify import Notifier
from .parts import cut as part_audio
from .settings import Settings
from .transcripts import join as stitcher

T = TypeVar("T")
log = logging.getLogger("batch-stt.server")


@dataclass(frozen=True)
class Context:
    settings: Settings
    ledger: Ledger
    auth: Authenticator
    events: EventLog
    metrics: Metrics
    notifier: Notifier
    split_ms: int = 0  # 0: long files stay whole (SPLIT_SECONDS=0, or no ffmpeg on the server)
    _stitching: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)

    async def write(self, operation: Callable[..., T], *args: object) -> T:
        """Run a ledger write from an async route.

        SQLite: right here on the event loop. Its writes are serialised anyway and take a fraction
        of a millisecond, while a thread-pool hop (and the GIL contention of dozens of waiting
        threads) cost more than the write: inline, the lease cycle ran 1.6x faster. PostgreSQL:
        in the thread pool, since each statement is a network round trip and claims may overlap.
        """
        if self.ledger.db.dialect == "sqlite":
            return operation(*args)
        return await run_in_threadpool(operation, *args)

    @property
    def jobs_dir(self) -> Path:
        """Uploaded jobs: each its audio and, once done, its results, in a folder of its own."""
        return self.settings.data_dir / "jobs"

    def root_of(self, task: TaskView) -> Path:
        return self.jobs_dir if task.job_id else self.settings.audio_dir

    def results_of(self, task: TaskView) -> results.ResultLayout:
        """A part's results wait beside its siblings' for the stitch (every format); a job's go to its
        folder (every format: the caller picks one when fetching); a file's to RESULTS_DIR."""
        if task.parent_id:
            return results.ResultLayout(self.parts_dir)
        if task.job_id:
            return results.ResultLayout(self.jobs_dir)
        return self.settings.results

    @property
    def parts_dir(self) -> Path:
        """Parts' cut audio and own results, per file, until the file is stitched."""
        return self.settings.results_dir / ".parts"

    def scan(self) -> ScanReport:
        """Register new files now; the housekeeping loop is woken to checksum, probe and cut them."""
        s = self.settings
        report = scanner.scan(self.ledger.catalogue, s.audio_dir, s.results, s.languages)
        self.wake()
        return report

    def wake(self) -> None:
        self._wake.set()

    def nap(self, seconds: float) -> None:
        """The housekeeping loop's pause: `seconds`, or until someone wakes it."""
        self._wake.wait(seconds)
        self._wake.clear()

    def checksum(self) -> int:
        return scanner.checksum_pending(self.ledger.catalogue, self.root_of)

    def probe(self) -> int:
        """Durations of new files; long ones are cut into parts as they are probed."""
        return scanner.probe_pending(self.ledger.catalogue, self.root_of, self.ledger.parts, self.split_ms)

    def apply_split_seconds(self) -> int:
        """At start (settings are read once): files nobody has started follow this SPLIT_SECONDS."""
        return scanner.split_pending(self.ledger.parts, self.root_of, self.split_ms)

    def audio(self, task: TaskView, check_unchanged: bool = True) -> audio.AudioFile:
        """The task's audio (a part's own range), recording in the ledger what a failed look tells."""
        try:
            found = audio.locate(self.root_of(task), task, check_unchanged)
        except audio.AudioGone:
            self.ledger.catalogue.mark_missing(task.file_id)
            raise
        except audio.AudioChanged as e:
            self.ledger.catalogue.file_changed(task.file_id, e.size, e.mtime)
            self.wake()  # to probe (and cut) the new content
            raise
        if task.parent_id is None:
            return found
        return part_audio.cut(found, self.parts_dir / task.parent_id, task)

    def part_for_lease(self, grant: Grant) -> Optional[tuple[int, str]]:
        """Cut a just-granted part's audio now, for the lease's size and SHA-256. None: it cannot be
        served (the file is gone, changed or will not cut) and the ledger has been told."""
        task = self.ledger.reports.task(grant.task_id)
        try:
            cut = self.audio(task)
        except (audio.AudioGone, audio.AudioChanged):
            return None
        except part_audio.CutError as e:
            self.ledger.leases.fail(grant.token, str(e), e.stderr_tail, retryable=False)
            return None
        return cut.stat.st_size, sha256_file(cut.path)

    def write_result(self, task: TaskView, files: Mapping[str, bytes], meta: dict[str, Any]) -> None:
        meta = {**meta, "task_id": task.id, "path": task.path, "attempt": task.attempts}
        self.results_of(task).write(task.result_stem, files, meta)

    def delete_job(self, job_id: str) -> None:
        """Stop its work, forget it, and remove its upload, results and any parts' files."""
        self.ledger.jobs.cancel(job_id)
        self.ledger.jobs.delete(job_id)
        shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)
        shutil.rmtree(self.parts_dir / job_id, ignore_errors=True)

    def stitch(self, file_id: str) -> bool:
        """Write a split file's results from its parts' results, then mark it done.

        Crash-safe: results.write_result replaces each file atomically and writes `.meta.json`
        last; the file stays `split` until then, so the housekeeping loop stitches it again.
        """
        with self._stitching:
            file = self.ledger.reports.task(file_id)
            parts = self.ledger.parts.of(file_id)
            if file.state != TaskState.SPLIT or not parts or any(p.state != TaskState.DONE for p in parts):
                return False
            folder = self.parts_dir / file_id
            loaded = []
            for p in parts:
                meta = json.loads(safe_join(folder, f"{p.id}.meta.json").read_text(encoding="utf-8"))
                texts = {f: safe_join(folder, f"{p.id}.{f}").read_text(encoding="utf-8") for f in meta["formats"]}
                loaded.append(stitcher.PartResult(p.start_ms, p.end_ms, texts, meta))
            language = next((r.meta["language"] for r in loaded if r.meta.get("language")), None)
            seconds = [r.meta.get("audio_seconds") or (r.end_ms - r.start_ms) / 1000 for r in loaded]
            meta = {
                "protocol": "stitched",
                "path": file.path,
                "language": language,
                "audio_seconds": round(sum(seconds), 3),
                "processing_seconds": round(sum(r.meta.get("processing_seconds") or 0 for r in loaded), 3),
                "clients": sorted({p.client for p in parts if p.client}),
                "parts": [
                    {
                        "task_id": p.id,
                        "start_ms": p.start_ms,
                        "end_ms": p.end_ms,
                        "cut": p.note,
                        "client": p.client,
                        **{
                            k: r.meta.get(k)
                            for k in ("protocol", "model", "backend", "audio_seconds", "processing_seconds")
                        },
                    }
                    for p, r in zip(parts, loaded, strict=True)
                ],
            }
            joined = stitcher.stitch(loaded, language)
            self.results_of(file).write(file.result_stem, joined, {**meta, "task_id": file.id})
            if self.ledger.parts.mark_stitched(file_id, sum(seconds)):
                shutil.rmtree(folder, ignore_errors=True)
            return True

    def try_stitch(self, file_id: str) -> bool:
        """stitch(), logging a failure: the file stays `split` and the housekeeping loop tries again."""
        try:
            return self.stitch(file_id)
        except (OSError, ValueError, KeyError) as e:
            log.error("cannot stitch %s yet: %s", file_id, e)
            return False

    def stitch_ready(self) -> int:
        """Stitch every file whose parts are all done (after a crash, or a stitch that failed)."""
        return sum(self.try_stitch(file_id) for file_id in self.ledger.parts.ready())

    def close(self) -> None:
        self.ledger.db.dispose()
        self.events.close()
