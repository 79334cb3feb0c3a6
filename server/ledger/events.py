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
from pathlib import Path
from typing import IO, Any, Optional

Listener = Callable[[str, dict[str, Any]], None]
log = logging.getLogger("batch-stt.events")


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

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **{k: v for k, v in fields.items() if v is not None}}
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
