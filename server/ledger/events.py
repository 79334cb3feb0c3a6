"""Structured lease-event log: one JSON line per event, to stdout and LOG_FILE.

Written directly rather than through `logging`: its handler machinery cost as much per event as
the SQL of a claim. One lock keeps lines whole when threads emit at once.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import IO, Any, Optional

log = logging.getLogger("batch-stt.events")


class Event(str, Enum):
    """Every event the ledger emits. Listeners match on members, so a renamed event is a type error
    (mypy) and an unknown name a ValueError at emit, never a metric or alert silently gone."""

    GRANTED = "granted"
    REPLICATED = "replicated"
    EXTENDED = "extended"
    EXPIRED = "expired"
    COMPLETED = "completed"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    RELEASED = "released"
    REQUEUED = "requeued"
    CHANGED = "changed"
    SPLIT = "split"
    UNSPLIT = "unsplit"
    STITCHED = "stitched"
    JOB = "job"
    CANCELLED = "cancelled"
    DELETED = "deleted"
    COOLDOWN = "cooldown"
    COOLDOWN_CLEARED = "cooldown_cleared"
    RESULT_PENDING = "result.pending"  # held until another host's result agrees
    RESULT_VALID = "result.valid"  # two hosts agreed: the task is done
    RESULT_INVALID = "result.invalid"  # outvoted by two hosts that agreed (or three that all differ)

    def __str__(self) -> str:
        return self.value


Listener = Callable[[Event, dict[str, Any]], None]


class EventLog:
    """Also the one place the rest of the server hears of lease events: metrics and notifications
    subscribe; the dashboard shows the last RECENT of them (this process's)."""

    RECENT = 50

    def __init__(self, log_file: Optional[Path] = None, stream: Optional[IO[str]] = sys.stdout):
        self._listeners: list[Listener] = []
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.RECENT)
        self._lock = threading.Lock()
        self._streams: list[IO[str]] = [] if stream is None else [stream]
        self._file = open(log_file, "a", encoding="utf-8") if log_file is not None else None
        if self._file is not None:
            self._streams.append(self._file)

    def emit(self, event: Event, **fields: Any) -> None:
        event = Event(event)  # a bare string that is not a member: ValueError, here, not a lost metric
        record = {
            "ts": round(time.time(), 3),
            "event": event.value,
            **{k: v for k, v in fields.items() if v is not None},
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        for listener in self._listeners:
            try:
                listener(event, record)
            except Exception:  # a metric or a notification must never fail a lease
                log.exception("event listener failed on %s", event)
        with self._lock:
            self.recent.append(record)
            for stream in self._streams:
                try:
                    stream.write(line)
                    stream.flush()
                except (OSError, ValueError):  # a closed or broken stdout must not fail a lease
                    pass

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._streams = []
            self._file = None
