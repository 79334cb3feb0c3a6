"""The server's one object: settings, ledger, auth and events, built once per app (no module state),
and the few operations that combine them (the service layer between routes and the ledger)."""

from __future__ import annotations

from dataclasses import dataclass

from . import audio, scanner
from .auth import Authenticator
from .events import EventLog
from .ledger import Ledger, ScanReport, TaskView
from .settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    ledger: Ledger
    auth: Authenticator
    events: EventLog

    def scan(self) -> ScanReport:
        s = self.settings
        return scanner.scan(self.ledger.catalogue, s.audio_dir, s.results_dir, s.default_language)

    def checksum(self) -> int:
        return scanner.checksum_pending(self.ledger.catalogue, self.settings.audio_dir)

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
