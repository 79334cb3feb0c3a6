"""Database tables. Timestamps are UNIX seconds (float) so comparisons are portable SQL."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class TaskState:
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"
    MISSING = "missing"
    ALL = (QUEUED, LEASED, DONE, FAILED, MISSING)


class AttemptState:
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # another attempt of the same task finished first
    RELEASED = "released"  # handed back unfinished by its client (does not count as an attempt)


class Task(SQLModel, table=True):
    """One unit of work: a whole file today, a time range of a file later (start_ms/end_ms)."""

    id: str = Field(primary_key=True, max_length=32)
    path: str = Field(index=True)  # POSIX path relative to AUDIO_DIR
    result_stem: str  # relative path of the results, without extension
    start_ms: Optional[int] = None
    end_ms: Optional[int] = None
    language: str = "auto"
    size: int = 0
    mtime: float = 0.0
    sha256: Optional[str] = None
    state: str = Field(default=TaskState.QUEUED)
    attempts: int = 0
    last_error: Optional[str] = None
    audio_seconds: Optional[float] = None
    created_at: float = 0.0
    updated_at: float = 0.0
    done_at: Optional[float] = None

    __table_args__ = (Index("ix_task_state_path", "state", "path"),)


class Attempt(SQLModel, table=True):
    """A lease: one client working on one task. Several may be active for one task."""

    id: Optional[int] = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="task.id", index=True)
    client: str
    protocol: str  # "v1" or "legacy"
    token: str = Field(unique=True)
    state: str = AttemptState.ACTIVE
    granted_at: float
    deadline: float
    heartbeat_at: Optional[float] = None
    progress: Optional[float] = None
    finished_at: Optional[float] = None
    error: Optional[str] = None
    stderr_tail: Optional[str] = None
    retryable: Optional[bool] = None

    __table_args__ = (Index("ix_attempt_state_deadline", "state", "deadline"),)


class Client(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=128)
    capabilities: str = "{}"  # JSON as sent in the last lease request
    first_seen: float = 0.0
    last_seen: float = 0.0
    tasks_done: int = 0
    tasks_failed: int = 0
