"""Structured lease-event log: one JSON line per event, to stdout and LOG_FILE."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import IO, Optional


class EventLog:
    def __init__(
        self, log_file: Optional[Path] = None, stream: Optional[IO[str]] = sys.stdout, name: str = "batch-stt.events"
    ):
        self.logger = logging.getLogger(f"{name}.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if stream is not None:
            self.logger.addHandler(logging.StreamHandler(stream))
        if log_file is not None:
            self.logger.addHandler(logging.FileHandler(log_file, encoding="utf-8"))

    def emit(self, event: str, **fields) -> None:
        record = {"ts": round(time.time(), 3), "event": event, **{k: v for k, v in fields.items() if v is not None}}
        self.logger.info(json.dumps(record, ensure_ascii=False))

    def close(self) -> None:
        for h in list(self.logger.handlers):
            h.close()
            self.logger.removeHandler(h)
