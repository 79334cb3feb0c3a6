"""What the volunteer sees: a live rich display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

log = logging.getLogger("batch-stt.client")


class Display:
    def __init__(self, live: Optional[bool] = None):
        self.live = sys.stderr.isatty() if live is None else live
        self.console = Console(stderr=True)
        self._progress: Optional[Progress] = None
        self._bar: Optional[TaskID] = None
        self._last_log = 0.0

    def info(self, message: str) -> None:
        if self.live:
            self.console.print(message, highlight=False)
        else:
            log.info(message)

    def start(self, label: str, total: float = 100.0) -> None:
        self.finish()
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("{task.fields[speed]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._bar = self._progress.add_task(label, total=total, speed="")
        else:
            log.info("%s ...", label)

    def update(self, done: float, speed: str = "") -> None:
        if self._progress is not None and self._bar is not None:
            self._progress.update(self._bar, completed=done, speed=speed)
        elif time.monotonic() - self._last_log > 30:  # a log line every 30 s, not per percent
            self._last_log = time.monotonic()
            log.info("  %.0f%% %s", done, speed)

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._bar = None
