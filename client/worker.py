"""The daemon's loop and one task's life, top to bottom:

lease -> download (resume, verify) -> ffprobe -> ffmpeg to WAV (job.py; with PREFETCH, for the next
task while whisper-cli runs) -> whisper-cli (heartbeats) -> outbox (durable) -> upload. Errors become
error reports in the same outbox. Nothing is uploaded that was not first written to disk, and nothing
leaves the outbox until the server acknowledged it.
"""

from __future__ import annotations

import logging
import platform
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

from . import __version__, media, transcribe
from .api import Lease, LeaseLost, Rejected, ServerAPI, Transient, Wait
from .backoff import Backoff
from .benchmark import measured_rtf
from .courtesy import Courtesy
from .guard import Guard
from .job import Job
from .notify import Notifiers
from .outbox import Outbox
from .progress import Display
from .settings import ClientSettings
from .subproc import yield_to_whisper
from .words import add_words

log = logging.getLogger("batch-stt.worker")
SENSE_IDLE = 5.0  # seconds between looks at the machine while paused with no task


def clean_text(data: bytes) -> bytes:
    """whisper.cpp can split a multibyte character across tokens; the server insists on UTF-8."""
    return data.decode("utf-8", errors="replace").encode("utf-8")


class Worker:
    def __init__(
        self,
        settings: ClientSettings,
        api: ServerAPI,
        outbox: Outbox,
        display: Display,
        notifier: Notifiers = Notifiers(),
    ):
        self.s = settings
        self.api = api
        self.outbox = outbox
        self.display = display
        self.notifier = notifier
        self.guard = Guard(settings, notifier, display.info)
        self.courtesy = Courtesy(settings.courtesy, settings.work_dir / "status.json", display.info)
        self.stopping = threading.Event()  # first signal: finish the current task, then exit
        self.aborting = threading.Event()  # second signal: stop now, hand the task back
        self._cancel: Optional[threading.Event] = None  # the running task's
        self._ahead: Optional[Job] = None  # the task being prefetched

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
            "backend": self.guard.backend,
            "model": self.s.whisper_model.name,
            "threads": self.s.threads,
            "rtf": measured_rtf(self.s),
            "english_only": self.s.english_only,
            "translate": not self.s.english_only,  # whisper's --translate needs a multilingual model
            **({"display_name": self.s.display_name} if self.s.display_name else {}),
        }

    # --- the loop ----------------------------------------------------------------------------

    def run(self, once: bool = False, max_tasks: Optional[int] = None, until_idle: bool = False) -> int:
        """Returns how many tasks this run worked on."""
        self.s.work_dir.mkdir(parents=True, exist_ok=True)
        backoff = Backoff(base=min(2.0, self.s.retry_max_seconds), cap=self.s.retry_max_seconds)
        worked = 0
        ahead: Optional[Future[Optional[Job]]] = None  # the next task, prepared while whisper-cli runs
        with ThreadPoolExecutor(1, "prefetch", initializer=yield_to_whisper) as pool:
            try:
                while not self.stopping.is_set() and (max_tasks is None or worked < max_tasks):
                    job = ahead.result() if ahead else None
                    ahead = self._ahead = None
                    if job is None:
                        if self.s.window and not self.s.window.is_open():
                            wait = min(self.s.window.seconds_until_open(), 300.0)
                            self.display.info(f"outside the processing window; next check in {wait:.0f} s")
                            self._sleep(wait)
                            continue
                        if self.courtesy.between_tasks():  # the machine is its owner's now: look again soon
                            self._sleep(SENSE_IDLE)
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
                        if isinstance(lease, Wait):  # work for us is queued: keep going, also --until-idle
                            self.display.info(f"server: wait ({lease.reason}); again in {lease.seconds:.0f} s")
                            self._sleep(lease.seconds * random.uniform(0.9, 1.1))
                            continue
                        if lease is None:
                            self.courtesy.note("idle", "nothing queued for this host")
                            if once or until_idle:
                                self.display.info("no task available")
                                break
                            self._sleep(self.s.poll_seconds * random.uniform(0.8, 1.2))
                            continue
                        job = self._prepare_shown(lease)
                    if self.s.prefetch and not once and (max_tasks is None or worked + 1 < max_tasks):
                        ahead = pool.submit(self._prefetch)
                    self.process(job, flush=ahead is None)
                    worked += 1
                    if once or self.aborting.is_set():
                        break
            finally:
                self._hand_back_ahead(ahead)
        self.drain_outbox()
        return worked

    def _prefetch(self) -> Optional[Job]:
        """In the background: deliver finished results, then lease and prepare the next task."""
        try:
            self.flush_outbox()
            if self.courtesy.paused:  # no new work while the machine is its owner's
                return None
            lease = self.api.lease(self.s.node_name, self.capabilities())
        except (Transient, Rejected) as e:
            log.info("prefetch: server unavailable (%s)", e)
            return None
        if not isinstance(lease, Lease):  # nothing, or a wait: the main loop asks again when free
            return None
        job = self._ahead = Job.open(self.api, lease, self.s.work_dir)
        log.info("prefetching %s", lease.describe())
        return job.prepare(self.api)

    def _hand_back_ahead(self, ahead: Optional[Future[Optional[Job]]]) -> None:
        """On the way out, the prefetched task goes back to the server at once (no attempt used up)."""
        if ahead is None:
            return
        if self._ahead is not None:
            self._ahead.cancel.set()  # stop its download
        job = ahead.result()
        if job is not None:
            self._hand_back(job.lease, "stopping before its turn")
            job.close()

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

    def _prepare_shown(self, lease: Lease) -> Job:
        job = Job.open(self.api, lease, self.s.work_dir)
        self.display.start(f"downloading {job.name}")
        try:
            return job.prepare(self.api, self.display.update)
        finally:
            self.display.finish()

    def process(self, job: Job, flush: bool = True) -> None:
        """Transcribe a prepared job and put its result (or error report) in the outbox, then deliver."""
        lease = job.lease
        self._cancel = job.cancel
        self.display.info(
            f"task {lease.task_id}: {lease.describe()} ({lease.size / 1e6:.1f} MB, language {lease.language})"
        )
        try:
            self.transcribe(job)
        except media.MediaError as e:
            self._report(lease, str(e), e.stderr_tail, retryable=False)
        except transcribe.TranscribeError as e:
            self._report(lease, str(e), e.stderr_tail, retryable=e.retryable)
        except transcribe.Cancelled:
            if self.aborting.is_set() or job.handed_back:
                self._hand_back(lease, job.handed_back or "stopped")
            else:
                self.display.info(f"task {lease.task_id} was taken back by the server; dropped")
        except LeaseLost as e:
            self.display.info(f"task {lease.task_id}: lease lost ({e}); dropped")
        except (Transient, OSError) as e:
            self._report(lease, f"this client could not finish: {e}", None, retryable=True)
        finally:
            self.display.finish()
            self._cancel = None
            job.close()
        if flush:  # else the prefetch thread delivers it
            self.deliver()

    def transcribe(self, job: Job) -> None:
        """whisper-cli on the job's audio; its files and metadata go to the outbox. Raises what failed."""
        if job.error is not None:
            raise job.error
        assert job.wav is not None
        lease = job.lease
        self.display.start(f"transcribing {job.name}")
        t0 = time.monotonic()

        def progress(pct: float) -> None:
            job.heartbeat.progress = pct
            elapsed = time.monotonic() - t0
            speed = f"{job.audio_seconds * pct / 100 / elapsed:.1f}x" if elapsed > 1 and pct else ""
            self.display.update(pct, speed)

        language = self.s.language or lease.language
        job.heartbeat.paused = lambda: self.courtesy.paused

        def give_up(why: str) -> None:  # paused past MAX_PAUSE_SECONDS: another host should have it
            job.handed_back = f"paused for over {self.s.courtesy.max_pause_seconds:.0f} s ({why})"
            job.cancel.set()

        def watch(pid: int) -> Callable[[], None]:
            return self.courtesy.watch(pid, job.name, give_up)

        asked = transcribe.task_args(lease.translate, lease.prompt, lease.temperature)
        result, how = self.guard.run(job.wav, job.work / "out", language, progress, job.cancel, asked, watch)
        self.display.finish()
        files = {fmt: clean_text(p.read_bytes()) for fmt, p in result.files.items()}
        if "json" in files:
            files["json"] = add_words(files["json"])
        meta = {
            "model": self.s.whisper_model.name,
            **how,  # the backend that made it, and any retry's reason
            "audio_seconds": round(job.audio_seconds, 3),
            "processing_seconds": round(result.seconds, 3),
            "language": result.language,
            **({"translated": True} if lease.translate else {}),
            **({"spot": list(lease.spot)} if lease.spot else {}),  # its timestamps count from the range's start
            "threads": self.s.threads,
            "vad": self.s.vad_enabled,
            "client": self.s.node_name,
            "client_version": __version__,
            "platform": platform.platform(),
            **{k: round(v, 3) for k, v in job.timings.items()},
        }
        self.outbox.put_result(lease.task_id, lease.token, files, meta)
        self.display.info(
            f"transcribed {job.name}: {job.audio_seconds:.0f} s of audio in {result.seconds:.1f} s "
            f"({job.audio_seconds / max(result.seconds, 1e-3):.1f}x real time)"
        )

    def deliver(self) -> None:
        """Upload what the outbox holds now; an unreachable server leaves it there for later."""
        try:
            self.flush_outbox()
        except Transient as e:
            self.display.info(f"upload postponed, server unreachable ({e}); the outbox keeps it")

    def _report(self, lease: Lease, message: str, stderr_tail: Optional[str], retryable: bool) -> None:
        self.display.finish()
        self.display.info(f"task {lease.task_id} failed: {message}")
        self.outbox.put_error(lease.task_id, lease.token, message, stderr_tail, retryable)
        self.notifier.send(f"task {lease.task_id} ({lease.describe()}) failed: {message}", stderr_tail)

    def _hand_back(self, lease: Lease, why: str = "aborted") -> None:
        try:
            self.api.release(lease.token)
            self.display.info(f"{why}; task {lease.task_id} handed back to the server")
        except (Transient, Rejected) as e:
            self.display.info(f"{why}; could not hand back {lease.task_id} ({e}); its lease will expire")
