"""The daemon's loop and one task's life, top to bottom:

lease -> download (resume, verify) -> ffprobe -> ffmpeg to WAV -> whisper-cli (heartbeats) ->
outbox (durable) -> upload. Errors become error reports in the same outbox. Nothing is uploaded
that was not first written to disk, and nothing leaves the outbox until the server acknowledged it.
"""

from __future__ import annotations

import json
import logging
import platform
import random
import shutil
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Optional

from . import __version__, media, transcribe
from .api import Lease, LeaseLost, Rejected, ServerAPI, Transient
from .backoff import Backoff
from .heartbeat import Heartbeat
from .outbox import Outbox
from .progress import Display
from .settings import ClientSettings

log = logging.getLogger("batch-stt.worker")


def whisper_config(s: ClientSettings) -> transcribe.WhisperConfig:
    return transcribe.WhisperConfig(
        cli=s.whisper_cli,
        model=s.whisper_model,
        threads=s.threads,
        vad_model=s.vad_model if s.vad_enabled else None,
        beam_size=s.beam_size,
        extra_args=s.extra_whisper_args,
    )


def detect_backend(s: ClientSettings) -> str:
    """The backend build.sh recorded next to the binary, unless WHISPER_BACKEND says otherwise."""
    if s.backend:
        return s.backend
    stamp = s.whisper_cli.parent.parent / ".batch-stt-stamp"
    try:
        return stamp.read_text().split()[1]
    except (OSError, IndexError):
        return "unknown"


def bench_file(s: ClientSettings) -> Path:
    return s.work_dir / "bench.json"


def measured_rtf(s: ClientSettings) -> Optional[float]:
    try:
        data = json.loads(bench_file(s).read_text())
        return float(data["rtf"]) if data.get("model") == s.whisper_model.name else None
    except (OSError, ValueError, KeyError):
        return None


def clean_text(data: bytes) -> bytes:
    """whisper.cpp can split a multibyte character across tokens; the server insists on UTF-8."""
    return data.decode("utf-8", errors="replace").encode("utf-8")


class Worker:
    def __init__(self, settings: ClientSettings, api: ServerAPI, outbox: Outbox, display: Display):
        self.s = settings
        self.api = api
        self.outbox = outbox
        self.display = display
        self.stopping = threading.Event()  # first signal: finish the current task, then exit
        self.aborting = threading.Event()  # second signal: stop now, hand the task back
        self._cancel: Optional[threading.Event] = None

    # --- signals -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.display.info("stopping after the current task (signal again to abort it now)")
        else:
            self.aborting.set()
            if self._cancel is not None:
                self._cancel.set()

    def _sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def capabilities(self) -> dict:
        return {
            "backend": detect_backend(self.s),
            "model": self.s.whisper_model.name,
            "threads": self.s.threads,
            "rtf": measured_rtf(self.s),
            "english_only": self.s.english_only,
        }

    # --- the loop ----------------------------------------------------------------------------

    def run(self, once: bool = False, max_tasks: Optional[int] = None, until_idle: bool = False) -> int:
        """Returns how many tasks this run worked on."""
        self.s.work_dir.mkdir(parents=True, exist_ok=True)
        backoff = Backoff(base=min(2.0, self.s.retry_max_seconds), cap=self.s.retry_max_seconds)
        worked = 0
        while not self.stopping.is_set() and (max_tasks is None or worked < max_tasks):
            if self.s.window and not self.s.window.is_open():
                wait = min(self.s.window.seconds_until_open(), 300.0)
                self.display.info(f"outside the processing window; next check in {wait:.0f} s")
                self._sleep(wait)
                continue
            try:
                self.flush_outbox()  # results first: they are finished work
                lease = self.api.lease(self.s.node_name, self.capabilities())
            except (Transient, Rejected) as e:
                delay = backoff.next_delay()
                self.display.info(f"server unavailable ({e}); retrying in {delay:.0f} s")
                self._sleep(delay)
                continue
            backoff.reset()
            if lease is None:
                if once or until_idle:
                    self.display.info("no task available")
                    break
                self._sleep(self.s.poll_seconds * random.uniform(0.8, 1.2))
                continue
            self.process(lease)
            worked += 1
            if once or self.aborting.is_set():
                break
        self.drain_outbox()
        return worked

    def flush_outbox(self) -> None:
        """Deliver everything pending; a transient error propagates and the rest waits."""
        for entry in self.outbox.pending():
            outcome = self.outbox.send(self.api, entry)
            self.display.info(f"uploaded {entry.kind} for {entry.task_id}: {outcome}")

    def drain_outbox(self, grace: float = 30.0) -> None:
        """On the way out: keep delivering until done. After a stop signal, try for `grace` more
        seconds; a second signal leaves at once. Whatever is left stays on disk for the next start."""
        backoff = Backoff(base=min(2.0, self.s.retry_max_seconds), cap=self.s.retry_max_seconds)
        give_up_at = None
        while True:
            try:
                return self.flush_outbox()
            except Transient as e:
                if self.stopping.is_set():
                    give_up_at = give_up_at or time.monotonic() + grace
                    if self.aborting.is_set() or time.monotonic() > give_up_at:
                        self.display.info(
                            f"server unreachable; {len(self.outbox.pending())} item(s) stay in "
                            f"{self.outbox.root} for the next start ({e})"
                        )
                        return
                delay = backoff.next_delay()
                self.display.info(f"server unavailable ({e}); retrying the upload in {delay:.0f} s")
                self.aborting.wait(delay)

    # --- one task ----------------------------------------------------------------------------

    def process(self, lease: Lease) -> None:
        work = self.s.work_dir / lease.task_id
        work.mkdir(parents=True, exist_ok=True)
        cancel = self._cancel = threading.Event()
        name = PurePosixPath(lease.path).name
        self.display.info(
            f"task {lease.task_id}: {lease.describe()} ({lease.size / 1e6:.1f} MB, language {lease.language})"
        )
        try:
            with Heartbeat(self.api, lease.token, lease.heartbeat_seconds, on_lost=cancel.set) as hb:
                timings: dict[str, float] = {}
                t0 = time.monotonic()
                (work / "src").mkdir(exist_ok=True)  # under its own name, so error messages name it
                audio = self._download(lease, work / "src" / name, cancel)
                timings["download_seconds"] = time.monotonic() - t0

                self.display.start(f"transcribing {name}")
                t0 = time.monotonic()

                def progress(pct: float, audio_seconds: float) -> None:
                    hb.progress = pct
                    elapsed = time.monotonic() - t0
                    speed = f"{audio_seconds * pct / 100 / elapsed:.1f}x" if elapsed > 1 and pct else ""
                    self.display.update(pct, speed)

                language = self.s.language or lease.language
                result = transcribe.transcribe_file(whisper_config(self.s), audio, work, language, progress, cancel)
                self.display.finish()
            seconds = result.audio_seconds
            timings["transcode_seconds"] = result.transcode_seconds
            files = {fmt: clean_text(p.read_bytes()) for fmt, p in result.files.items()}
            meta = {
                "model": self.s.whisper_model.name,
                "backend": detect_backend(self.s),
                "audio_seconds": round(seconds, 3),
                "processing_seconds": round(result.seconds, 3),
                "language": result.language,
                "threads": self.s.threads,
                "vad": self.s.vad_enabled,
                "client": self.s.node_name,
                "client_version": __version__,
                "platform": platform.platform(),
                **{k: round(v, 3) for k, v in timings.items()},
            }
            self.outbox.put_result(lease.task_id, lease.token, files, meta)
            self.display.info(
                f"transcribed {name}: {seconds:.0f} s of audio in {result.seconds:.1f} s "
                f"({seconds / max(result.seconds, 1e-3):.1f}x real time)"
            )
        except media.MediaError as e:
            self._report(lease, str(e), e.stderr_tail, retryable=False)
        except transcribe.TranscribeError as e:
            self._report(lease, str(e), e.stderr_tail, retryable=e.retryable)
        except transcribe.Cancelled:
            if self.aborting.is_set():
                self._hand_back(lease)
            else:
                self.display.info(f"task {lease.task_id} was taken back by the server; dropped")
        except LeaseLost as e:
            self.display.info(f"task {lease.task_id}: lease lost ({e}); dropped")
        except (Transient, OSError) as e:
            self._report(lease, f"this client could not finish: {e}", None, retryable=True)
        finally:
            self.display.finish()
            self._cancel = None
            shutil.rmtree(work, ignore_errors=True)
        try:
            self.flush_outbox()
        except Transient as e:
            self.display.info(f"upload postponed, server unreachable ({e}); the outbox keeps it")

    def _download(self, lease: Lease, dest: Path, cancel: threading.Event) -> Path:
        """Download with resume; a broken connection continues where it stopped."""
        backoff = Backoff(base=1.0, cap=60.0)
        self.display.start(f"downloading {PurePosixPath(lease.path).name}")
        for attempt in range(8):
            if cancel.is_set():
                raise transcribe.Cancelled("download stopped")
            try:
                return self.api.download(
                    lease, dest, lambda done, total: self.display.update(100 * done / max(total, 1))
                )
            except Transient as e:
                if attempt == 7:
                    raise
                delay = backoff.next_delay()
                log.info("download interrupted (%s); resuming in %.0f s", e, delay)
                cancel.wait(delay)
        raise AssertionError("unreachable")

    def _report(self, lease: Lease, message: str, stderr_tail: Optional[str], retryable: bool) -> None:
        self.display.finish()
        self.display.info(f"task {lease.task_id} failed: {message}")
        self.outbox.put_error(lease.task_id, lease.token, message, stderr_tail, retryable)

    def _hand_back(self, lease: Lease) -> None:
        try:
            self.api.release(lease.token)
            self.display.info(f"aborted; task {lease.task_id} handed back to the server")
        except (Transient, Rejected) as e:
            self.display.info(f"aborted; could not hand back {lease.task_id} ({e}); its lease will expire")
