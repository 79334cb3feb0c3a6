"""Telling the volunteer when something on their machine needs a look, as the original client did:
a Gotify message titled with the node's name, priority 7, with the last lines of ffmpeg's or
whisper-cli's output. Never raises and never waits long: a notification must not stop the work."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import requests

log = logging.getLogger("batch-stt.notify")

PRIORITY = 7  # the original client's
TAIL_LINES = 15


@dataclass(frozen=True)
class Gotify:
    url: str  # the Gotify server, e.g. https://gotify.example.org
    token: str  # an application token (GOTIFY_KEY)
    title: str  # NODE_NAME
    timeout: float = 10.0

    def send(self, message: str, details: Optional[str] = None) -> bool:
        text = message if not details else f"{message}\n\n" + "\n".join(details.splitlines()[-TAIL_LINES:])
        try:
            r = requests.post(
                f"{self.url.rstrip('/')}/message",
                headers={"X-Gotify-Key": self.token},  # not in the URL, which ends up in logs
                json={"title": self.title, "message": text, "priority": PRIORITY},
                timeout=self.timeout,
            )
            r.raise_for_status()
            return True
        except requests.RequestException as e:
            log.warning("could not notify Gotify at %s: %s", self.url, e)
            return False


class Silent:
    """No notifier configured."""

    def send(self, message: str, details: Optional[str] = None) -> bool:
        return False


Notifier = Gotify | Silent
