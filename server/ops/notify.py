"""Telling the operator what happened: apprise URLs (NOTIFY_URLS: gotify://, ntfys://, mailto://, ...)
and a generic JSON webhook (WEBHOOK_URL), signed with HMAC-SHA256 of the raw body under
WEBHOOK_SECRET in `X-Batch-STT-Signature: sha256=<hex>`.

Each notification is first a file in an outbox under DATA_DIR (one per target), then sent by a
background thread, retried with backoff while the receiver fails: a receiver that is down never
slows a request, and a restart loses nothing (the client's outbox, once more).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import requests
import urllib3

from stt_common.files import fsync_dir, write_atomic

from . import callbacks

log = logging.getLogger("batch-stt.notify")

SIGNATURE_HEADER = "X-Batch-STT-Signature"
GIVE_UP_SECONDS = 7 * 24 * 3600  # a week of retries, then logged and dropped


class NotifyEvent(str, Enum):
    TASK_FAILED = "task.failed"  # a task failed for good, with its error
    FILE_DONE = "file.done"  # off by default: one per file
    QUEUE_EMPTY = "queue.empty"  # the batch is finished
    HOST_COOLDOWN = "host.cooldown"
    CHECKS_STALLED = "checks.stalled"  # held results that no host seen may check: the batch cannot end

    def __str__(self) -> str:
        return self.value


DEFAULT_EVENTS = frozenset(
    {NotifyEvent.TASK_FAILED, NotifyEvent.QUEUE_EMPTY, NotifyEvent.HOST_COOLDOWN, NotifyEvent.CHECKS_STALLED}
)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    return min(5.0 * 2 ** max(attempts - 1, 0), 3600.0)


@dataclass(frozen=True)
class Targets:
    apprise_urls: Sequence[str] = ()
    webhook_url: str = ""
    webhook_secret: str = ""  # the operator's webhook only: each job's callback has its own secret
    callback_rules: callbacks.CallbackRules = field(default_factory=callbacks.CallbackRules)

    def names(self) -> list[str]:
        webhook = [f"webhook:{self.webhook_url}"] if self.webhook_url else []
        return [*(f"apprise:{u}" for u in self.apprise_urls), *webhook]


class Notifier:
    def __init__(self, outbox: Path, targets: Targets, events: frozenset[NotifyEvent] = DEFAULT_EVENTS,
                 clock: Callable[[], float] = time.time, timeout: float = 10.0):  # fmt: skip
        self.outbox = outbox
        self.targets = targets
        self.events = events
        self.clock = clock
        self.timeout = timeout
        self.wake = threading.Event()
        self._lead: Optional[int] = None  # the lock's descriptor, once this process speaks for the outbox
        outbox.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return bool(self.targets.names())

    def wants(self, event: NotifyEvent) -> bool:
        """Whether `event` would be sent: asked before the work of gathering what it would say."""
        return self.enabled and event in self.events

    def leads(self) -> bool:
        """Whether this process sends what housekeeping watches for: the first to ask keeps a lock on
        the outbox for its lifetime (another takes it over when it ends), so WORKERS > 1 processes,
        which share the outbox, tell the operator once, not once each."""
        if self._lead is None:
            fd = os.open(self.outbox / ".watch.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._lead = fd
        return True

    def enqueue(self, event: NotifyEvent, payload: dict[str, Any]) -> None:
        """Durable before it returns; sending is the background thread's business."""
        if not self.wants(event):
            return
        body = {"event": event.value, "ts": round(self.clock(), 3), **payload}
        for target in self.targets.names():
            self._put(target, body)

    def enqueue_to(self, url: str, body: dict[str, Any], secret: Optional[str]) -> None:
        """A one-off webhook for a submitter (a job's callback_url), retried like WEBHOOK_URL, signed
        with the job's own secret over a body with its time (`ts`), checked again when sent, sent to
        the address that was checked and never redirected (callbacks.py)."""
        self._put(f"callback:{url}", {**body, "ts": round(self.clock(), 3)}, secret)

    def _put(self, target: str, body: dict[str, Any], secret: Optional[str] = None) -> None:
        entry = {"target": target, "body": body, "attempts": 0, "next_at": 0.0, "created": self.clock()}
        if secret:
            entry["secret"] = secret
        self._write(self.outbox / f"{int(self.clock() * 1000):015d}-{uuid.uuid4().hex[:8]}.json", entry)
        self.wake.set()

    def deliver_due(self) -> int:
        """Send what is due, oldest first; returns how many were delivered. One process at a time
        (WORKERS > 1 share the outbox): a pass another worker is making is not made twice, so a
        receiver that is down does not hear each notification once per worker."""
        with open(self.outbox / ".sender.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another worker is sending: it will see these entries too
            return self._deliver()

    def _deliver(self) -> int:
        delivered = 0
        now = self.clock()
        for path in sorted(self.outbox.glob("*.json")):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # half-written by a crash before its rename: never there
            if entry["next_at"] > now:
                continue
            error = self._send(entry["target"], entry["body"], entry.get("secret"))
            if error is None:
                path.unlink(missing_ok=True)
                delivered += 1
            elif now - entry["created"] > GIVE_UP_SECONDS:
                log.error("giving up on %s to %s after a week: %s", entry["body"]["event"], entry["target"], error)
                path.unlink(missing_ok=True)
            else:
                entry["attempts"] += 1
                entry["next_at"] = now + backoff(entry["attempts"])
                entry["last_error"] = error
                self._write(path, entry)
        return delivered

    def pending(self) -> int:
        return len(list(self.outbox.glob("*.json")))

    def run(self, stop: threading.Event, idle: float = 1.0) -> None:
        """The background thread's loop."""
        while not stop.is_set():
            try:
                self.deliver_due()
            except OSError as e:
                log.error("notification outbox %s: %s", self.outbox, e)
            self.wake.wait(idle)
            self.wake.clear()

    def _send(self, target: str, body: dict[str, Any], secret: Optional[str]) -> Optional[str]:
        kind, _, url = target.partition(":")
        raw = json.dumps(body, sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        try:
            if kind == "callback":
                dest = callbacks.resolve(url, self.targets.callback_rules)  # it may resolve elsewhere by now
                if secret:
                    headers[SIGNATURE_HEADER] = sign(secret, raw)
                status = callbacks.post(dest, raw, headers, self.timeout)
                return None if 200 <= status < 300 else f"HTTP {status}"
            if kind == "webhook":
                if self.targets.webhook_secret:
                    headers[SIGNATURE_HEADER] = sign(self.targets.webhook_secret, raw)
                r = requests.post(url, data=raw, headers=headers, timeout=self.timeout, allow_redirects=False)
                return None if r.ok else f"HTTP {r.status_code}"
            return None if _apprise(url, body) else "apprise could not deliver it"
        except callbacks.UnsafeCallback as e:  # never sent, and no retry makes it safe
            log.error("dropping the callback of %s: %s", body.get("id", "?"), e)
            return None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
            return str(e)

    @staticmethod
    def _write(path: Path, entry: dict[str, Any]) -> None:
        write_atomic(path, json.dumps(entry).encode())
        fsync_dir(path.parent)


def _apprise(url: str, body: dict[str, Any]) -> bool:
    import apprise  # only where NOTIFY_URLS is used

    notifier = apprise.Apprise()
    if not notifier.add(url):
        log.error("apprise does not understand %s", url.split("://")[0] + "://...")
        return False
    title = f"batch-stt: {body['event']}"
    text = "\n".join(f"{k}: {v}" for k, v in body.items() if k not in ("event", "ts"))
    return bool(notifier.notify(title=title, body=text or body["event"]))
