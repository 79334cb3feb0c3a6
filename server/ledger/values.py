"""What the ledger hands out: immutable values, built from rows by column name."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from functools import cache
from typing import Any, ClassVar, Optional, TypeVar, cast

from .states import AttemptState, TaskState

R = TypeVar("R", bound="RowView")


TASK_ID = re.compile(r"^[a-z2-7]{16}$")  # what task_id_for makes


def task_id_for(path: str, start_ms: int | None = None, end_ms: int | None = None, track: str = "") -> str:
    """Stable, short, filesystem-safe id (legacy clients name temp files `<id>.mp3`); a part's names its
    range, and a speaker's part its track (PlannedPart.track)."""
    key = path if start_ms is None else f"{path}#{start_ms}-{end_ms}{track}"
    return base64.b32encode(hashlib.sha256(key.encode()).digest()).decode()[:16].lower()


@cache
def _columns(cls: Hashable) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cast(Any, cls)))


class RowView:
    """A view built from a row by column name (never by position), its `state` as its STATE Enum.
    Its dataclass fields are the columns its statements select (sql/params.py)."""

    STATE: ClassVar[type[Enum]] = TaskState

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return _columns(cast(Hashable, cls))  # mypy takes a class for unhashable

    @classmethod
    def from_row(cls: type[R], row: Any) -> R:
        m: Mapping[str, Any] = row._mapping
        return cls(**{**{f: m[f] for f in cls.columns()}, "state": cls.STATE(m["state"])})


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
    problem: Optional[str] = None  # the operator must fix something (a broken sidecar) before it is work


@dataclass(frozen=True)
class Grant:
    """A lease just granted: what the client needs to fetch and work on the task."""

    task_id: str
    token: str
    deadline: float
    replica: bool  # a second copy of a task another host is working on (tail replication)
    path: str
    language: str
    size: int
    sha256: Optional[str]
    attempt: int
    parent_id: Optional[str] = None  # a part: its file's task id, and its range of that file
    start_ms: Optional[int] = None
    end_ms: Optional[int] = None
    duration_ms: Optional[int] = None  # the whole file's
    translate: bool = False  # into English: whisper's --translate
    prompt: Optional[str] = None  # whisper's initial prompt
    temperature: Optional[float] = None  # whisper's sampling temperature (None: its default)
    check_start_ms: Optional[int] = None  # a spot check: the range of the task's audio to transcribe
    check_end_ms: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "translate", bool(self.translate))

    @property
    def seconds(self) -> float:
        return own_seconds(self.start_ms, self.end_ms, self.duration_ms)

    @property
    def spot(self) -> Optional[tuple[float, float]]:
        """A spot check's range of the task's audio, in seconds (None: the whole task)."""
        return spot_range(self.check_start_ms, self.check_end_ms)


def spot_range(start_ms: Optional[int], end_ms: Optional[int]) -> Optional[tuple[float, float]]:
    return None if start_ms is None or end_ms is None else (start_ms / 1000, end_ms / 1000)


def own_seconds(start_ms: Optional[int], end_ms: Optional[int], duration_ms: Optional[int]) -> float:
    """A task's own audio: a part's range, else the file's length; 0 while unknown (tables.LENGTH_MS)."""
    if start_ms is not None and end_ms is not None:
        return (end_ms - start_ms) / 1000
    return (duration_ms or 0) / 1000


@dataclass(frozen=True)
class TaskView(RowView):
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
    duration_ms: Optional[int]  # the whole file's, for a part too
    parent_id: Optional[str]  # set on a part: its file's task id
    start_ms: Optional[int]  # a part's range of its file
    end_ms: Optional[int]
    note: Optional[str]  # a part: how its start was cut
    job_id: Optional[str]  # uploaded over HTTP (its audio and results live under DATA_DIR/jobs/)
    priority: int
    min_tier: int
    validate_all: bool  # its job asked for every result to be checked
    translate: bool  # into English (whisper's --translate)
    prompt: Optional[str]  # whisper's initial prompt
    temperature: Optional[float]  # whisper's sampling temperature
    stream: Optional[int] = None  # a speaker's part: its audio stream (0: the file's first audio stream)
    channel: Optional[int] = None  # ... or its channel of the first audio stream
    speaker: Optional[str] = None  # ... and the speaker's label
    speakers: Optional[str] = None  # how its job asked speakers to be found (states.Speakers; None: SPEAKERS)
    check_start_ms: Optional[int] = None  # checking: the range of its audio its checks transcribe (None: all)
    check_end_ms: Optional[int] = None

    def __post_init__(self) -> None:
        for flag in ("validate_all", "translate"):
            object.__setattr__(self, flag, bool(getattr(self, flag)))  # SQLite's driver says 0 or 1

    @property
    def file_id(self) -> str:
        """The task that stands for the whole file (itself, unless this is a part)."""
        return self.parent_id or self.id

    @property
    def seconds(self) -> float:
        return own_seconds(self.start_ms, self.end_ms, self.duration_ms)

    @property
    def spot(self) -> Optional[tuple[float, float]]:
        """The range of its audio its checks transcribe, in seconds (None: the whole task)."""
        return spot_range(self.check_start_ms, self.check_end_ms)

    def is_spot(self, claimed: Any) -> bool:
        """Does a result's `claimed` range (its meta's `spot`) say it transcribed this task's range alone?"""
        spot = self.spot
        try:
            return spot is not None and all(abs(float(x) - y) < 0.01 for x, y in zip(claimed, spot, strict=True))
        except (TypeError, ValueError):
            return False


@dataclass(frozen=True)
class AttemptView(RowView):
    STATE = AttemptState

    id: int
    task_id: str
    client: str
    state: AttemptState
    deadline: float
    granted_at: float
    checking: bool = False  # granted to check a held result

    def __post_init__(self) -> None:
        object.__setattr__(self, "checking", bool(self.checking))  # SQLite's driver says 0 or 1


@dataclass(frozen=True)
class PartView(RowView):
    """A part of a split file, with the client whose result was accepted (for the stitched meta)."""

    id: str
    start_ms: int
    end_ms: int
    state: TaskState
    attempts: int
    note: Optional[str]
    client: Optional[str]
    stream: Optional[int]
    channel: Optional[int]
    speaker: Optional[str]


@dataclass(frozen=True)
class PlannedPart:
    """One time range of a long file, as the splitter cut it, and of one speaker's stream or channel
    when the file's speakers are transcribed apart."""

    start_ms: int
    end_ms: int
    note: str
    stream: Optional[int] = None
    channel: Optional[int] = None
    speaker: Optional[str] = None

    @property
    def track(self) -> str:
        """What tells this speaker's part from another's of the same range (in its task id)."""
        if self.speaker is None:
            return ""
        return f"@{self.stream}" if self.channel is None else f"@{self.stream}.{self.channel}"


@dataclass(frozen=True)
class Verdict:
    """What validation made of an upload (validation.py)."""

    held: bool = False  # the upload waits for a check: the task is not done
    kept: Optional[int] = None  # accepted after a check: the held attempt whose result was kept
    confirmed: tuple[str, ...] = ()  # hosts whose results a check confirmed (the uploader's included)
    outvoted: tuple[str, ...] = ()  # hosts whose held results two others outvoted
    disagreed: bool = False  # validation.MAX_RESULTS results, no two alike: the task failed
    cooled: list[tuple[str, float]] = field(default_factory=list)  # outvoted hosts that start a cool-down
    rechecked: list[str] = field(default_factory=list)  # done tasks of outvoted hosts, held again for a check
    redo: bool = False  # two spot checks outvoted the held result: the task is queued to be transcribed again

    @property
    def settled(self) -> bool:
        """A vote ended (every agreement confirms two hosts): the task's held results are needed no more."""
        return bool(self.confirmed) or self.disagreed or self.redo


@dataclass(frozen=True)
class Completion:
    task: TaskView
    duplicate: bool  # the task was already done: nothing changed
    late: bool  # the lease had expired, but the result was still accepted
    attempt: int
    file_ready: Optional[str] = None  # the last part of this file is done: stitch it
    cooled: list[tuple[str, float]] = field(default_factory=list)  # hosts that start a cool-down now
    verdict: Verdict = Verdict()

    @property
    def held(self) -> bool:
        return self.verdict.held


@dataclass(frozen=True)
class ScanReport:
    added: int = 0
    changed: int = 0
    missing: int = 0
    returned: int = 0


@dataclass(frozen=True)
class Made:
    """What a result says of how it was made. The model and backend label the speed the server
    measures (a client that fell back from its GPU says cpu). `audio_seconds`, the client's word, is
    kept as what was transcribed only for a file whose length was never probed; its processing time
    is not believed at all, so it is not here."""

    model: str
    backend: str
    audio_seconds: Optional[float] = None
    spot: Optional[tuple[float, ...]] = None  # a check that says it transcribed this range alone (seconds)
