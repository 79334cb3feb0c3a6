"""Which lease events the operator hears of: a task that failed for good, a finished file, the end of
the batch, a host put in cool-down; and, watched by housekeeping, held results no host may check.
An EventLog listener; delivery is notify.py's job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from ..ledger import Event, JobState, Ledger, NotFound, TaskState
from .notify import Notifier, NotifyEvent

# Events after which an uploaded job may have ended.
_JOB_ENDS = frozenset({Event.COMPLETED, Event.STITCHED, Event.FAILED, Event.CANCELLED, Event.RESULT_INVALID})
# Events after which the queue may have run dry.
_FINISHING = frozenset({Event.COMPLETED, Event.FAILED, Event.EXPIRED, Event.STITCHED})
# A held result waits this long for a checker before the operator hears that none may come: in a
# new batch, hosts join in their own time.
STALLED_AFTER = 600.0


class Alerts:
    def __init__(self, ledger: Ledger, notifier: Notifier, callbacks: Notifier, clock: Callable[[], float] = time.time):
        self.ledger = ledger
        self.notifier = notifier
        self.callbacks = callbacks  # jobs' callbacks: a queue of their own, so the operator's alerts never wait
        self.clock = clock
        self._lock = threading.Lock()
        self._empty_told = False  # queue.empty once per batch: until work is handed out again
        self._stalled_told = False  # checks.stalled once: until no held result is stalled

    def watch_checks(self) -> None:
        """Every sweep (housekeeping): tell of held results no host seen may check, once they have
        waited STALLED_AFTER; again only after a sweep that found none."""
        # leads: one of several worker processes watches
        if not self.notifier.wants(NotifyEvent.CHECKS_STALLED) or not self.notifier.leads():
            return
        now = self.clock()
        stalled = [s for s in self.ledger.reports.stalled_checks() if now - s.held_since >= STALLED_AFTER]
        told, self._stalled_told = self._stalled_told, bool(stalled)  # housekeeping's thread alone
        if stalled and not told:
            paths = [s.where for s in stalled[:5]]
            self.notifier.enqueue(
                NotifyEvent.CHECKS_STALLED,
                {"results": len(stalled), "paths": paths, "languages": sorted({s.language for s in stalled})},
            )

    def on_event(self, event: Event, record: dict[str, Any]) -> None:
        if event in _JOB_ENDS:  # the events name their job; a stitched file is looked up (once per file)
            job_id = self._job_of(record["task"]) if event == Event.STITCHED else record.get("job")
            if job_id:
                self._job_callback(job_id)
        if not self.notifier.enabled:
            return
        if event in (Event.GRANTED, Event.REPLICATED):
            with self._lock:
                self._empty_told = False
            return
        if event == Event.COOLDOWN:
            self.notifier.enqueue(NotifyEvent.HOST_COOLDOWN, {"host": record["client"], "until": record["until"]})
        elif event == Event.FAILED and record.get("task_state") == TaskState.FAILED:
            self._task_failed(record)
        elif event in (Event.COMPLETED, Event.STITCHED):
            self._file_done(record["task"])
        if event in _FINISHING:
            self._maybe_empty()

    def _job_of(self, task_id: str) -> Optional[str]:
        try:
            return self.ledger.reports.task(task_id).job_id
        except NotFound:
            return None

    def _job_callback(self, job_id: str) -> None:
        """An uploaded job that ended calls its callback_url once (signed like the webhook)."""
        job = self.ledger.jobs.get(job_id)
        if job.state not in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
            return
        if callback := self.ledger.jobs.take_callback(job.id):
            url, secret = callback
            body = {"event": "job.ended", "id": job.id, "state": job.state.value, "error": job.task.last_error}
            self.callbacks.enqueue_to(url, body, secret)

    def _task_failed(self, record: dict[str, Any]) -> None:
        task = self.ledger.reports.task(record["task"])
        self.notifier.enqueue(
            NotifyEvent.TASK_FAILED,
            {
                "task": task.id,
                "path": task.path,
                "part": [task.start_ms, task.end_ms] if task.parent_id else None,
                "error": task.last_error or record.get("error"),
                "attempts": task.attempts,
                "client": record.get("client"),
            },
        )

    def _file_done(self, task_id: str) -> None:
        if not self.notifier.wants(NotifyEvent.FILE_DONE):
            return
        try:
            task = self.ledger.reports.task(task_id)
        except NotFound:
            return
        if task.parent_id is None and task.state == TaskState.DONE:  # a part is not a file
            self.notifier.enqueue(NotifyEvent.FILE_DONE, {"task": task.id, "path": task.path})

    def _maybe_empty(self) -> None:
        """Asked after every result: one indexed row; the totals only once the batch is finished."""
        if self.ledger.reports.work_left():
            return
        with self._lock:
            if self._empty_told:
                return
            self._empty_told = True
        ov = self.ledger.reports.overview()
        done, failed = ov.files[TaskState.DONE], ov.files[TaskState.FAILED]
        self.notifier.enqueue(NotifyEvent.QUEUE_EMPTY, {"files_done": done, "files_failed": failed})
