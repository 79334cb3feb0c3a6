"""Uploaded jobs: a file sent over HTTP becomes a task like any other (probed, cut into parts,
scheduled, retried), marked with its job, a priority over the directory backlog and the least model
tier it asks for. This module owns what concerns a job as a whole: create, follow, cancel, delete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Optional

from .database import Database
from .errors import NotFound
from .events import Event, EventLog
from .sql import catalogue as sql_catalogue
from .sql import jobs as sql_jobs
from .states import Speakers, TaskState
from .values import TaskView


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


_FROM_TASK = {
    TaskState.QUEUED: JobState.QUEUED,
    TaskState.HELD: JobState.QUEUED,
    TaskState.LEASED: JobState.RUNNING,
    TaskState.SPLIT: JobState.RUNNING,
    TaskState.CHECKING: JobState.RUNNING,
    TaskState.DONE: JobState.DONE,
    TaskState.FAILED: JobState.FAILED,
    TaskState.MISSING: JobState.FAILED,
    TaskState.CANCELLED: JobState.CANCELLED,
}
JOB_MIN_TIER = 1  # tiers.TIERS['tiny']
STATES_OF = {js: [ts for ts, j in _FROM_TASK.items() if j == js] for js in JobState}


@dataclass(frozen=True)
class JobRequest:
    """What a submitter asks of a job, beside its file."""

    language: str = "auto"
    model_tier: int = JOB_MIN_TIER  # the least model tier (tiers.TIERS)
    priority: int = 0  # over the directory backlog (0)
    callback_url: Optional[str] = None
    callback_secret: Optional[str] = None  # signs the callback; the submitter got it at submit
    validate: bool = False  # a second host checks every result, whatever VALIDATION says
    translate: bool = False  # into English (whisper's --translate): only hosts that can take it
    prompt: Optional[str] = None  # whisper's initial prompt
    temperature: Optional[float] = None  # whisper's sampling temperature
    speakers: Optional[Speakers] = None  # how to find its speakers (None: the server's SPEAKERS)
    owner: Optional[str] = None  # who may see it (None: anyone, as before owners)
    request_key: Optional[str] = None  # an OpenAI-style request's digest: its retry finds this job (find_request)


@dataclass(frozen=True)
class JobView:
    id: str
    filename: str
    state: JobState
    progress: float  # percent: parts done and the live attempts' own progress
    created_at: float
    task: TaskView  # the job's own task: its language, tier (min_tier), priority, error
    owner: Optional[str] = None  # who submitted it (None: a job from before owners, or auth is off)


class Jobs:
    def __init__(self, db: Database, events: EventLog, clock: Callable[[], float]):
        self.db = db
        self.events = events
        self.clock = clock

    def create(
        self, *, job_id: str, filename: str, stored_as: str, result_stem: str, size: int, mtime: float, ask: JobRequest
    ) -> JobView:
        """`stored_as`, `result_stem`: the upload's and its results' place under the jobs folder
        (disk/layout.py). Probing (and cutting) follows in the housekeeping thread, as for any new file."""
        now = self.clock()
        # At least the least tier there is: a job goes only to hosts that name their model, never to a
        # legacy client (tier 0), whose id-only reports could not be held to the job.
        model_tier = max(ask.model_tier, JOB_MIN_TIER)
        with self.db.writing() as c:
            c.execute(
                sql_catalogue.insert_task,
                {
                    "id": job_id,
                    "path": stored_as,
                    "result_stem": result_stem,
                    "language": ask.language,
                    "size": size,
                    "mtime": mtime,
                    "state": TaskState.QUEUED.value,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "job_id": job_id,
                    "priority": ask.priority,
                    "min_tier": model_tier,
                    "validate_all": ask.validate,
                    "translate": ask.translate,
                    "prompt": ask.prompt,
                    "temperature": ask.temperature,
                    "speakers": None if ask.speakers is None else ask.speakers.value,
                },
            )
            c.execute(
                sql_jobs.insert_job,
                {
                    "id": job_id,
                    "task_id": job_id,
                    "filename": filename,
                    "callback_url": ask.callback_url,
                    "created_at": now,
                    "owner": ask.owner,
                    "callback_secret": ask.callback_secret,
                    "request_key": ask.request_key,
                },
            )
        self.events.emit(Event.JOB, task=job_id, priority=ask.priority, min_tier=model_tier)
        return self.get(job_id)

    def get(self, job_id: str) -> JobView:
        with self.db.reading() as c:
            row = c.execute(sql_jobs.job_by_id, {"jid": job_id}).first()
            tasks = [TaskView.from_row(r) for r in c.execute(sql_jobs.tasks_of_job, {"jid": job_id})]
            if row is None or not tasks:  # (not tasks: being deleted right now)
                raise NotFound(f"no such job: {job_id}")
            live = dict(c.execute(sql_jobs.live_progress, {"jid": job_id}).all())
        own, parts = tasks[0], tasks[1:]
        work = parts or [own]
        done = sum(100.0 if t.state == TaskState.DONE else float(live.get(t.id) or 0) for t in work)
        state = _FROM_TASK[own.state]
        progress = 100.0 if state == JobState.DONE else round(done / len(work), 1)
        return JobView(row.id, row.filename, state, progress, row.created_at, own, row.owner)

    def page(
        self, state: Optional[JobState] = None, limit: int = 100, offset: int = 0, owner: Optional[str] = None
    ) -> list[JobView]:
        """Newest first; `owner`: only that owner's jobs (None: everyone's)."""
        params = {"limit": limit, "offset": offset, "owner": owner}
        with self.db.reading() as c:
            if state is None:
                ids = list(c.execute(sql_jobs.jobs_page[owner is not None], params).scalars())
            else:
                states = [s.value for s in STATES_OF[state]]
                q = sql_jobs.jobs_in_states_page[owner is not None]
                ids = list(c.execute(q, {**params, "states": states}).scalars())
        return [self.get(i) for i in ids]

    def find_request(self, request_key: str, owner: Optional[str]) -> Optional[str]:
        """The unfinished or done job an earlier identical request made (a client's retry), if any."""
        with self.db.reading() as c:
            return c.execute(sql_jobs.job_of_request, {"key": request_key, "owner": owner}).scalar()

    def cancel(self, job_id: str) -> JobView:
        """Unfinished work stops: nobody gets it again, and its holders hear 409 at their next heartbeat."""
        self.get(job_id)
        now = self.clock()
        with self.db.writing() as c:
            c.execute(sql_jobs.stop_attempts, {"jid": job_id, "now": now})
            cancelled = c.execute(sql_jobs.cancel_tasks, {"jid": job_id, "now": now}).rowcount
        if cancelled:
            self.events.emit(Event.CANCELLED, task=job_id, job=job_id)
        return self.get(job_id)

    def take_callback(self, job_id: str) -> Optional[tuple[str, Optional[str]]]:
        """The job's callback URL and signing secret the first time they are asked for after the job
        ended; then None."""
        with self.db.writing() as c:
            row = c.execute(sql_jobs.claim_callback, {"jid": job_id}).first()
        return (row.callback_url, row.callback_secret) if row and row.callback_url else None

    def delete(self, job_id: str) -> None:
        """Forget the job, its task, parts and attempts (the caller removes its files)."""
        self.get(job_id)
        with self.db.writing() as c:
            c.execute(sql_jobs.drop_attempts, {"jid": job_id})
            c.execute(sql_jobs.drop_tasks, {"jid": job_id})
            c.execute(sql_jobs.drop_job, {"jid": job_id})
        self.events.emit(Event.DELETED, task=job_id)
