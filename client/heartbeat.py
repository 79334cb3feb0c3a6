"""Keeps a lease alive while work runs; sets `lost` when the server says the lease is gone."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Optional

from .api import LeaseLost, Rejected, ServerAPI, Transient

log = logging.getLogger("batch-stt.heartbeat")


class Heartbeat:
    def __init__(self, api: ServerAPI, token: str, every: float, on_lost: Callable[[], None] = lambda: None):
        self.api, self.token, self.every, self.on_lost = api, token, every, on_lost
        self.progress: Optional[float] = None
        self.paused: Callable[[], Optional[str]] = lambda: None  # why whisper-cli is paused, if it is
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.api.heartbeat(self.token, self.progress, self.paused())
            except LeaseLost as e:
                log.warning("lease lost (%s): stopping this task", e)
                self.lost.set()
                self.on_lost()
                return
            except (Transient, Rejected) as e:  # keep working; a late result is still accepted
                log.info("heartbeat failed, will retry: %s", e)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
