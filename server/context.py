"""The server's one object: settings, ledger, auth and events, built once per app (no module state),
and the few operations that combine them (the service layer between routes and the ledger)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool

from . import audio, scanner
from .auth import Authenticator
from .events import EventLog
from .ledger import Ledger, ScanReport, TaskView
from .settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    settings: Settings
    ledger: Ledger
    auth: Authenticator
    events: EventLog

    async def write(self, operation: Callable[..., T], *args: object) -> T:
        """Run a ledger write from an async route.

        SQLite: right here on the event loop. Its writes are serialised anyway and take a fraction
        of a millisecond, while a thread-pool hop (and the GIL contention of dozens of waiting
        threads) cost more than the write: inline, the lease cycle ran 1.6x faster. PostgreSQL:
        in the thread pool, since each statement is a network round trip and claims may overlap.
        """
        if self.ledger.db.dialect == "sqlite":
            return operation(*args)
        return await run_in_threadpool(operation, *args)

    def scan(self) -> ScanReport:
        s = self.settings
        return scanner.scan(self.ledger.catalogue, s.audio_dir, s.results_dir, s.default_language)

    def checksum(self) -> int:
        return scanner.checksum_pending(self.ledger.catalogue, self.settings.audio_dir)

    def probe(self) -> int:
        return scanner.probe_pending(self.ledger.catalogue, self.settings.audio_dir)

    def audio(self, task: TaskView, check_unchanged: bool = True) -> audio.AudioFile:
        """The task's file, recording in the ledger what a failed look tells about it."""
        try:
            return audio.locate(self.settings.audio_dir, task, check_unchanged)
        except audio.AudioGone:
            self.ledger.catalogue.mark_missing(task.id)
            raise
        except audio.AudioChanged as e:
            self.ledger.catalogue.file_changed(task.id, e.size, e.mtime)
            raise

    def close(self) -> None:
        self.ledger.db.dispose()
        self.events.close()
