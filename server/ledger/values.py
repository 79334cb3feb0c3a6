"""What the ledger hands out: immutable values, built from rows by column name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Optional, TypeVar

from .states import AttemptState, TaskState

V = TypeVar("V")


def _from_row(cls: Callable[..., V], row: Any, names: tuple[str, ...], state: type[Enum]) -> V:
    """A view from a row by column name (never by position), its state as the Enum."""
    m: Mapping[str, Any] = row._mapping
    return cls(**{**{f: m[f] for f in names}, "state": state(m["state"])})


@dataclass(frozen=True)
class FoundFile:
    """A file seen by the scanner."""

    task_id: str
    path: str
    result_stem: str
    language: str
    size: int
    mtime: float
    has_result: bool


@dataclass(frozen=True)
class Grant:
    """A lease just granted: what the client needs to fetch and work on the task."""

    task_id: str
    token: str
    path: str
    language: str
    size: int
    sha256: Optional[str]
    deadline: float
    attempt: int


@dataclass(frozen=True)
class TaskView:
    id: str
    path: str
    result_stem: str
    language: str
    state: TaskState
    attempts: int
    size: int
    sha256: Optional[str]
    last_error: Optional[str]
    audio_seconds: Optional[float]
    updated_at: float
    done_at: Optional[float]
    mtime: float
    duration_ms: Optional[int]

    @classmethod
    def from_row(cls, row: Any) -> TaskView:
        return _from_row(cls, row, TASK_VIEW_FIELDS, TaskState)


TASK_VIEW_FIELDS = tuple(f.name for f in fields(TaskView))


@dataclass(frozen=True)
class AttemptView:
    id: int
    task_id: str
    client: str
    state: AttemptState
    deadline: float

    @classmethod
    def from_row(cls, row: Any) -> AttemptView:
        return _from_row(cls, row, ATTEMPT_VIEW_FIELDS, AttemptState)


ATTEMPT_VIEW_FIELDS = tuple(f.name for f in fields(AttemptView))


@dataclass(frozen=True)
class Completion:
    task: TaskView
    duplicate: bool  # the task was already done: nothing changed
    late: bool  # the lease had expired, but the result was still accepted
    attempt: int


@dataclass(frozen=True)
class ScanReport:
    added: int = 0
    changed: int = 0
    missing: int = 0
    returned: int = 0


@dataclass(frozen=True)
class Stats:
    counts: dict[TaskState, int]
    seconds_done: float
    bytes_done: int
    bytes_left: int
    active_clients: list[str]
    active_leases: int
