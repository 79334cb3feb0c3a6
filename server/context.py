"""What every request handler needs, built once per app (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from . import scanner
from .auth import Authenticator, Principal
from .events import EventLog
from .leases import Ledger, ScanReport
from .settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    ledger: Ledger
    auth: Authenticator
    events: EventLog

    def scan(self) -> ScanReport:
        s = self.settings
        return scanner.scan(self.ledger, s.audio_dir, s.results_dir, s.default_language)

    def checksum(self) -> int:
        return scanner.checksum_pending(self.ledger, self.settings.audio_dir)


def get_context(request: Request) -> Context:
    return request.app.state.ctx


def authenticated(request: Request) -> Principal:
    return get_context(request).auth.identify(request)


def admin(request: Request) -> Principal:
    return get_context(request).auth.require_admin(request)
