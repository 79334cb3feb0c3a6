"""What the operator's reports read from the ledger: the batch's counts and pace, split files, hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .states import TaskState


@dataclass(frozen=True)
class Stats:
    counts: dict[TaskState, int]
    seconds_done: float
    bytes_done: int
    bytes_left: int
    active_clients: list[str]
    active_leases: int
    replicas: int = 0  # tail replicas issued
    replicas_won: int = 0  # of which the replica's result came first
    check_seconds: float = 0.0  # validation's cost: audio transcribed by checks of held results


@dataclass(frozen=True)
class Overview:
    """The batch at a glance: files and audio by state, and the last hour's output for the ETA."""

    files: dict[TaskState, int]
    audio_seconds: dict[TaskState, float]  # units of work: parts, and files not cut
    done_last_hour: int
    audio_last_hour: float

    @property
    def audio_left(self) -> float:
        return self.audio_seconds[TaskState.QUEUED] + self.audio_seconds[TaskState.LEASED]

    @property
    def eta_seconds(self) -> Optional[float]:
        """At the last hour's pace; None while nothing was finished in it."""
        if not self.audio_left:
            return 0.0
        return self.audio_left * 3600 / self.audio_last_hour if self.audio_last_hour else None


@dataclass(frozen=True)
class StalledCheck:
    """A held result that no host seen lately may check: every one that may take its task answered it
    (its own result, a failure, an outvoted one). It waits for a host that may come."""

    task_id: str
    path: str
    start_ms: Optional[int]  # a part: where it starts in its file
    language: str
    held_since: float

    @property
    def where(self) -> str:
        """Its file, and a part's start in it."""
        return self.path if self.start_ms is None else f"{self.path} from {self.start_ms // 1000} s"


@dataclass(frozen=True)
class SplitFile:
    id: str
    path: str
    state: TaskState
    duration_ms: Optional[int]
    parts_done: int
    parts: int
    speakers: tuple[str, ...] = ()  # cut per speaker: their labels


@dataclass(frozen=True)
class HostView:
    """One volunteer machine as the operator sees it."""

    name: str
    model: str
    backend: str
    speed: Optional[float]  # learned from its results (audio seconds per second), for this model/backend
    bench_rtf: Optional[float]  # what `stt-client bench` measured, sent with each lease request
    samples: int
    last_seen: float
    tasks_done: int
    tasks_failed: int
    strikes: int
    cooldown_until: Optional[float]
    replicas: int  # second copies it was handed
    replicas_won: int  # of which its result came first
    valid_streak: int = 0  # results in a row another host confirmed
    trusted: bool = False  # its streak reached TRUST_AFTER: only one result in n is checked
    invalid_results: int = 0  # results two other hosts outvoted
