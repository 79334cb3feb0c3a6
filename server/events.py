"""Structured lease-event log: one JSON line per event, to stdout and LOG_FILE.

Written directly rather than through `logging`: its handler machinery cost as much per event as
the SQL of a claim. One lock keeps lines whole when threads emit at once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Optional


class EventLog:
    def __init__(self, log_file: Optional[Path] = None, stream: Optional[IO[str]] = sys.stdout):
        self._lock = threading.Lock()
        self._streams: list[IO[str]] = [] if stream is None else [stream]
        self._file = open(log_file, "a", encoding="utf-8") if log_file is not None else None
        if self._file is not None:
            self._streams.append(self._file)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **{k: v for k, v in fields.items() if v is not None}}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            for stream in self._streams:
                try:
                    stream.write(line)
                    stream.flush()
                except (OSError, ValueError):  # a closed or broken stdout must not fail a lease
                    pass

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._streams = []
            self._file = None
