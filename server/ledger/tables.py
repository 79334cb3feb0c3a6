"""The database tables. Timestamps are UNIX seconds (float) so comparisons are portable SQL.

States are stored as plain strings (VARCHAR) and typed with the Enums of states.py; a schema change
here needs a migration in migrations/versions/ (tests/integration/test_migrations.py compares them).
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Index, String, text
from sqlmodel import Field, SQLModel

from .states import AttemptState, Protocol, TaskState

# A task's own audio in ms: a part's range, a file's length; 0 while unknown (not probed yet).
LENGTH_MS = "coalesce(end_ms - start_ms, duration_ms, 0)"


class Task(SQLModel, table=True):
    """One unit of work: a whole file, or a part of one (parent_id, start_ms/end_ms).

    A long file's own row stays as the file's record (state `split` while its parts are the work);
    its parts copy its path, size, mtime and duration, so every check of the source holds for them.
    """

    id: str = Field(primary_key=True, max_length=32)
    path: str = Field(index=True)  # POSIX path relative to AUDIO_DIR
    result_stem: str  # relative path of the results, without extension
    start_ms: Optional[int] = None
    end_ms: Optional[int] = None
    # The file's length as ffprobe tells it (housekeeping); None: not probed yet; 0: ffprobe could not tell.
    duration_ms: Optional[int] = None
    parent_id: Optional[str] = Field(default=None, index=True, max_length=32)  # a part's file
    split_ms: Optional[int] = None  # a split file: the SPLIT_SECONDS its parts were cut for
    note: Optional[str] = None  # a part: how its start was cut ("pause 0.8 s", "no pause: quietest point")
    language: str = "auto"
    size: int = 0
    mtime: float = 0.0
    sha256: Optional[str] = None
    state: TaskState = Field(default=TaskState.QUEUED, sa_type=String)
    attempts: int = 0
    replicas: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # extra copies handed out
    job_id: Optional[str] = Field(default=None, index=True, max_length=32)  # an uploaded job's (and its parts')
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # higher goes first
    min_tier: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # least model tier (jobs.TIERS)
    validate_all: bool = Field(
        default=False, sa_column_kwargs={"server_default": "0"}
    )  # a job asked: check each result
    # Whisper's --translate (into English): only for hosts that say they can (a multilingual model).
    translate: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    prompt: Optional[str] = None  # whisper's initial prompt (an OpenAI-style request's `prompt`)
    temperature: Optional[float] = None  # whisper's sampling temperature (None: its default)
    # A speaker's part: its audio stream (among the file's audio streams) or channel, and its label.
    stream: Optional[int] = None
    channel: Optional[int] = None
    speaker: Optional[str] = None
    speakers: Optional[str] = Field(default=None, max_length=16)  # a job's states.Speakers (None: SPEAKERS)
    check_tier: Optional[int] = None  # checking: the model tier of the held result a check should match
    # checking: the range of its audio a check transcribes (a spot check); None: the whole task.
    check_start_ms: Optional[int] = None
    check_end_ms: Optional[int] = None
    last_error: Optional[str] = None
    audio_seconds: Optional[float] = None
    created_at: float = 0.0
    updated_at: float = 0.0
    done_at: Optional[float] = None

    __table_args__ = (
        # A claim's level (the top priority), then its task within the level without sorting the queue:
        # FIFO in path order; the scheduler's longest or shortest (LENGTH_MS) within one group of the
        # level (language, least tier), so a rare language is found without walking the common one.
        # The trailing columns let the snapshot's sums per group read the index alone.
        Index("ix_task_queue", "state", "priority", "path", "start_ms"),
        Index(
            "ix_task_length",
            *("state", "priority", "language", "min_tier", text(f"{LENGTH_MS} DESC"), "path", "start_ms"),
            *("duration_ms", "end_ms"),
        ),
    )


class Attempt(SQLModel, table=True):
    """A lease: one client working on one task. Several may be active for one task."""

    id: Optional[int] = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="task.id", index=True)
    client: str
    protocol: Protocol = Field(sa_type=String)
    token: str = Field(unique=True)
    state: AttemptState = Field(default=AttemptState.ACTIVE, sa_type=String)
    granted_at: float
    deadline: float
    heartbeat_at: Optional[float] = None
    progress: Optional[float] = None
    finished_at: Optional[float] = None
    error: Optional[str] = None
    stderr_tail: Optional[str] = None
    retryable: Optional[bool] = None
    replica: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})  # a second copy (tail)
    eta: Optional[float] = None  # when the scheduler expected it done, as granted
    checking: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})  # granted to check a held result
    checked_ms: Optional[int] = None  # a check that transcribed only its task's spot-check range: that range's length
    paused: Optional[str] = None  # why its host paused the work (the volunteer's rules), as of its last heartbeat
    principal: Optional[str] = Field(default=None, max_length=128)  # whose credentials leased it (credit)

    __table_args__ = (Index("ix_attempt_state_deadline", "state", "deadline"),)


class Client(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=128)
    capabilities: str = "{}"  # JSON as sent in the last lease request
    first_seen: float = 0.0
    last_seen: float = 0.0
    tasks_done: int = 0
    tasks_failed: int = 0
    # Bad-host cool-down: failures that other hosts then transcribed, since this host's last success.
    strikes: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    cooldowns: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # in a row: each lasts longer
    cooldown_until: Optional[float] = None
    # Validation: results in a row that another host confirmed (trusted from TRUST_AFTER), and outvoted ones.
    valid_streak: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    invalid_results: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Speed(SQLModel, table=True):
    """A host's learned speed for one model and backend: decayed sums of its results' seconds."""

    client: str = Field(primary_key=True, max_length=128)
    model: str = Field(primary_key=True, max_length=128)
    backend: str = Field(primary_key=True, max_length=32)
    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    samples: int = 0
    updated_at: float = 0.0


class Job(SQLModel, table=True):
    """A file uploaded over HTTP (POST /api/v1/jobs): its task (and parts) do the work."""

    id: str = Field(primary_key=True, max_length=32)
    task_id: str = Field(max_length=32)
    filename: str  # as uploaded (its safe form is the task's path); tier and priority are the task's
    callback_url: Optional[str] = None
    callback_sent: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    created_at: float
    owner: Optional[str] = Field(default=None, index=True, max_length=128)  # who submitted it (None: anyone)
    callback_secret: Optional[str] = Field(default=None, max_length=64)  # signs its callback (given at submit)
    # An OpenAI-style request's upload and options (a digest): a retry of it follows the same job.
    request_key: Optional[str] = Field(default=None, index=True, max_length=64)


class Principal(SQLModel, table=True):
    """An API token (`stt-server token add`): only its SHA-256 digest is kept."""

    name: str = Field(primary_key=True, max_length=128)
    role: str = Field(max_length=16)  # auth.Role
    token_sha256: str = Field(unique=True, max_length=64)
    created_at: float
    revoked_at: Optional[float] = None


task = Task.__table__  # type: ignore[attr-defined]
job = Job.__table__  # type: ignore[attr-defined]
attempt = Attempt.__table__  # type: ignore[attr-defined]
client = Client.__table__  # type: ignore[attr-defined]
speed = Speed.__table__  # type: ignore[attr-defined]
principal = Principal.__table__  # type: ignore[attr-defined]
metadata = SQLModel.metadata
