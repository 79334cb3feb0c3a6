"""Every state a task or an attempt can be in: the one list the tables, the API and the CLI share."""

from __future__ import annotations

from enum import Enum


class TaskState(str, Enum):
    """queued -> leased -> done | failed (after MAX_ATTEMPTS); missing while its file is gone; held
    while the operator must fix something first (a broken sidecar): a rescan after the fix queues it.

    A long file is `split` while its parts (tasks of their own) are worked on, then `done` once
    stitched, or `failed` when one of its parts failed for good.
    """

    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"
    MISSING = "missing"
    SPLIT = "split"
    HELD = "held"
    CANCELLED = "cancelled"  # an uploaded job its owner called off
    CHECKING = "checking"  # a result is held until another host's agrees (validation.py)

    def __str__(self) -> str:
        return self.value


class AttemptState(str, Enum):
    """One lease's life: active until it completes, fails, expires, is superseded or released."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"  # another attempt of the same task finished first
    RELEASED = "released"  # handed back unfinished (does not use up an attempt)
    PENDING = "pending"  # its result is held until another host's agrees with it
    INVALID = "invalid"  # its result was outvoted by two hosts that agreed

    def __str__(self) -> str:
        return self.value


class Speakers(str, Enum):
    """How a file's speakers are found (SPEAKERS, or a job's own choice): each audio stream a speaker,
    each channel of a stereo stream, streams when there are several (auto), or one speaker (off)."""

    OFF = "off"
    STREAMS = "streams"
    CHANNELS = "channels"
    AUTO = "auto"

    def __str__(self) -> str:
        return self.value


class Protocol(str, Enum):
    V1 = "v1"
    LEGACY = "legacy"

    def __str__(self) -> str:
        return self.value
