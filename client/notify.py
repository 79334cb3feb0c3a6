"""Telling the volunteer when something on their machine needs a look, as the original client did:
a Gotify message titled with the node's name, priority 7, with the last lines of ffmpeg's or
whisper-cli's output; and the same to any apprise URLs (NOTIFY_URLS; apprise is an optional
install, to keep the client light). Never raises: a notification must not stop the work."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import requests

log = logging.getLogger("batch-stt.notify")

PRIORITY = 7  # the original client's
TAIL_LINES = 15


def _with_tail(message: str, details: Optional[str]) -> str:
    return message if not details else f"{message}\n\n" + "\n".join(details.splitlines()[-TAIL_LINES:])


@dataclass(frozen=True)
class Gotify:
    url: str  # the Gotify server, e.g. https://gotify.example.org
    token: str  # an application token (GOTIFY_KEY)
    title: str  # NODE_NAME
    timeout: float = 10.0

    def send(self, message: str, details: Optional[str] = None) -> bool:
        text = _with_tail(message, details)
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


@dataclass(frozen=True)
class Apprise:
    urls: tuple[str, ...]
    title: str

    def send(self, message: str, details: Optional[str] = None) -> bool:
        import apprise  # checked at start by notifier_for

        notifier = apprise.Apprise()
        for url in self.urls:
            notifier.add(url)
        try:
            return bool(notifier.notify(title=self.title, body=_with_tail(message, details)))
        except Exception as e:  # a plugin's own failure must not stop the work
            log.warning("could not notify through apprise: %s", e)
            return False


@dataclass(frozen=True)
class Notifiers:
    each: tuple[Gotify | Apprise, ...] = ()

    def send(self, message: str, details: Optional[str] = None) -> bool:
        return all([n.send(message, details) for n in self.each]) and bool(self.each)


class NotifySetupError(Exception):
    pass


def notifier_for(node: str, gotify_url: str, gotify_key: str, urls: tuple[str, ...]) -> Notifiers:
    each: list[Gotify | Apprise] = []
    if gotify_url and gotify_key:
        each.append(Gotify(gotify_url, gotify_key, title=node))
    if urls:
        try:
            import apprise  # noqa: F401
        except ImportError:
            raise NotifySetupError("NOTIFY_URLS needs apprise: pip install apprise") from None
        each.append(Apprise(urls, title=node))
    return Notifiers(tuple(each))
