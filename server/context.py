"""The server's one object, built once per app (no module state): settings, ledger, auth, events and
the disk layout, and the few operations that combine them (the service layer between routes and the
ledger). The background passes are housekeeping.py's; stitching is parts/stitch.py's."""

from __future__ import annotations

import functools
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Optional, ParamSpec, TypeVar

from stt_common.files import sha256_file

from . import group_commit
from .auth import Authenticator, Role
from .disk import audio, scanner, uploads
from .disk.layout import Layout
from .disk.upload import Upload
from .group_commit import Batcher, Result
from .ledger import (
    Ask,
    Assigner,
    Claimed,
    Completion,
    CooldownRule,
    EventLog,
    Grant,
    JobRequest,
    JobView,
    Ledger,
    ScanReport,
    Speakers,
    TaskView,
    ValidationMode,
    ValidationRule,
)
from .ops.alerts import Alerts
from .ops.metrics import Metrics
from .ops.notify import Notifier, Targets
from .parts.cut import CutError, cut
from .parts.plan import Splitter
from .parts.stitch import Stitcher
from .settings import Settings

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("batch-stt.server")
CALLBACK_TIMEOUT = 5.0  # seconds: a receiver that hangs holds up only the callbacks after it, briefly


@dataclass(frozen=True)
class Context:
    settings: Settings
    ledger: Ledger
    auth: Authenticator
    events: EventLog
    metrics: Metrics
    notifier: Notifier  # the operator's alerts
    callbacks: Notifier  # jobs' callbacks: their own outbox and sender, with a short timeout
    alerts: Alerts  # what the operator hears of (the events', and what housekeeping watches)
    layout: Layout
    splitter: Splitter
    stitcher: Stitcher
    claims: Batcher[Ask, Claimed]  # written in batches (group_commit.py)
    results: Batcher[Result, Completion]
    _wake: threading.Event = field(default_factory=threading.Event)

    async def write(self, operation: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a ledger write from an async route (group_commit.on_writer: inline on SQLite)."""
        return await group_commit.on_writer(self.ledger, functools.partial(operation, *args, **kwargs))

    def scan(self) -> ScanReport:
        """Register new files now; the housekeeping loop is woken to checksum, probe and cut them."""
        s = self.settings
        report = scanner.scan(self.ledger.catalogue, s.audio_dir, s.results, s.languages)
        self.wake()
        return report

    def submit_job(self, source: IO[bytes], filename: Optional[str], ask: JobRequest) -> JobView:
        """Store an upload in a new job's folder (checked with ffprobe: uploads.NotMedia), then make
        its job; the housekeeping thread is woken to probe and cut it."""
        job_id, name = uploads.new_job_id(), uploads.safe_name(filename)
        stored, _ = uploads.store(self.layout.job_folder(job_id), name, source)
        st = stored.stat()
        job = self.ledger.jobs.create(
            job_id=job_id,
            filename=name,
            stored_as=self.layout.job_upload(job_id, stored.name),
            result_stem=self.layout.job_result_stem(job_id),
            size=st.st_size,
            mtime=st.st_mtime,
            ask=ask,
        )
        self.wake()
        return job

    def wake(self) -> None:
        self._wake.set()

    def nap(self, seconds: float) -> None:
        """The housekeeping loop's pause: `seconds`, or until someone wakes it."""
        self._wake.wait(seconds)
        self._wake.clear()

    def audio(self, task: TaskView, check_unchanged: bool = True) -> audio.AudioFile:
        """The task's audio (a part's own range), recording in the ledger what a failed look tells."""
        try:
            found = audio.locate(self.layout.root_of(task), task, check_unchanged)
        except audio.AudioGone:
            self.ledger.catalogue.mark_missing(task.file_id)
            raise
        except audio.AudioChanged as e:
            self.ledger.catalogue.file_changed(task.file_id, e.size, e.mtime)
            self.wake()  # to probe (and cut) the new content
            raise
        if task.parent_id is None:
            return found
        return cut(found, self.layout.part_folder(task.parent_id), task)

    def part_for_lease(self, grant: Grant) -> Optional[tuple[int, str]]:
        """Cut a just-granted part's audio now, for the lease's size and SHA-256. None: it cannot be
        served (the file is gone, changed or will not cut) and the ledger has been told."""
        task = self.ledger.reports.task(grant.task_id)
        try:
            found = self.audio(task)
        except (audio.AudioGone, audio.AudioChanged):
            return None
        except CutError as e:
            self.ledger.leases.fail(grant.token, str(e), e.stderr_tail, retryable=False)
            return None
        return found.stat.st_size, sha256_file(found.path)

    def upload(self, files: Mapping[str, bytes], meta: dict[str, Any]) -> Upload:
        """A client's result, for the ledger to keep, hold for a check, or compare (ledger.Results)."""
        return Upload(self.layout, files, meta, self.settings.validate_wer)

    def settled(self, done: Completion) -> None:
        """After the completion's commit of a vote (`done.verdict.settled`): its held results are
        needed no more. Most uploads settle none, and their routes skip this thread-pool hop."""
        shutil.rmtree(self.layout.held_folder(done.task.id), ignore_errors=True)

    def delete_job(self, job_id: str) -> None:
        """Stop its work, forget it, and remove its upload, results and any parts' files."""
        self.ledger.jobs.cancel(job_id)
        self.ledger.jobs.delete(job_id)
        shutil.rmtree(self.layout.job_folder(job_id), ignore_errors=True)
        shutil.rmtree(self.layout.part_folder(job_id), ignore_errors=True)

    def close(self) -> None:
        self.ledger.db.dispose()
        self.events.close()


def cutting(settings: Settings) -> tuple[int, Speakers]:
    """SPLIT_SECONDS (ms) and SPEAKERS as the server can apply them: both need ffmpeg and ffprobe
    (without them, files must not wait for a probe that cannot happen)."""
    if shutil.which("ffprobe") and shutil.which("ffmpeg"):
        return settings.split_seconds * 1000, settings.speakers
    if settings.split_seconds or settings.speakers != Speakers.OFF:
        log.warning("SPLIT_SECONDS and SPEAKERS need ffmpeg and ffprobe on the server: every file stays whole")
    return 0, Speakers.OFF


def build_context(settings: Settings, event_stream: Optional[IO[str]] = None) -> Context:
    """Raises MigrationError (one line) when the database cannot be brought to this release's schema."""
    settings.prepare_dirs()
    events = EventLog(settings.log_file, stream=sys.stdout if event_stream is None else event_stream)
    split_ms, speakers = cutting(settings)
    ledger = Ledger.open(
        settings.database_url,
        lease_seconds=settings.lease_seconds,
        legacy_lease_seconds=settings.legacy_lease_seconds,
        max_attempts=settings.max_attempts,
        events=events,
        sqlite_synchronous=settings.sqlite_synchronous,
        splitting=bool(split_ms) or speakers != Speakers.OFF,
        assigner=Assigner(settings.scheduler, settings.replica_budget),
        cooldown=CooldownRule(settings.cooldown_strikes, settings.cooldown_seconds),
        validation=ValidationRule(settings.validation, settings.trust_after, check_seconds=settings.check_seconds),
    )
    tokens = {**settings.auth_tokens, **{t: ("admin", Role.ADMIN) for t in settings.admin_tokens}}
    auth = Authenticator(tokens, settings.auth_users_file, ledger.principals)
    metrics = Metrics(ledger)
    notifier = Notifier(
        settings.data_dir / "notifications",
        Targets(settings.notify_urls, settings.webhook_url, settings.webhook_secret),
        settings.notify_events,
    )
    callbacks = Notifier(
        settings.data_dir / "callbacks", Targets(callback_rules=settings.callback_rules), timeout=CALLBACK_TIMEOUT
    )
    events.subscribe(metrics.observe)
    alerts = Alerts(ledger, notifier, callbacks)
    events.subscribe(alerts.on_event)
    layout = Layout(settings.audio_dir, settings.data_dir, settings.results)
    splitter = Splitter(ledger.parts, layout, split_ms, speakers)
    stitcher = Stitcher(ledger, layout, keep_parts=settings.validation != ValidationMode.OFF)
    batches = group_commit.claims(ledger), group_commit.results(ledger)
    return Context(
        settings, ledger, auth, events, metrics, notifier, callbacks, alerts, layout, splitter, stitcher, *batches
    )
