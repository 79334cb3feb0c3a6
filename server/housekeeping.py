"""The background: probe, cut and checksum new files, stitch finished ones, rescan every
SCAN_INTERVAL, sweep expired leases (claims also do it) and look for checks no host may make; and
the thread that sends notifications.
Started and stopped with the app (app.py's lifespan); `stt-server scan` runs the passes once."""

from __future__ import annotations

import logging
import threading
import time

from .context import Context
from .disk import scanner
from .disk.results import remove_stale_temps

log = logging.getLogger("batch-stt.server")


def checksum(ctx: Context) -> int:
    return scanner.checksum_pending(ctx.ledger.catalogue, ctx.layout.root_of)


def probe(ctx: Context) -> int:
    """Durations of new files; long ones are cut into parts as they are probed."""
    return scanner.probe_pending(ctx.ledger.catalogue, ctx.layout.root_of, ctx.splitter)


def loop(ctx: Context, stop: threading.Event) -> None:
    """Re-cut unstarted files for this SPLIT_SECONDS once, then the passes until `stop`. A scan
    wakes it early."""
    sweep = max(1.0, min(30.0, ctx.settings.lease_seconds / 4))
    interval = ctx.settings.scan_interval
    last_scan = last_sweep = time.monotonic()
    try:
        ctx.splitter.apply()
    except Exception:  # the files stay as they were cut; new files still follow the setting
        log.exception("applying SPLIT_SECONDS to files not yet started failed")
    while not stop.is_set():
        try:
            probe(ctx)  # first: while splitting is on, no file goes out before its length is known
            checksum(ctx)
            ctx.stitcher.ready()
            ctx.nap(sweep)
            now = time.monotonic()
            if now - last_sweep >= sweep:
                last_sweep = now
                ctx.ledger.leases.expire_due()
                ctx.alerts.watch_checks()
            if interval and now - last_scan >= interval:
                last_scan = now
                ctx.scan()
        except Exception:  # keep the loop alive; the next round retries
            log.exception("housekeeping failed")
            ctx.nap(sweep)


class Background:
    """The housekeeping thread and the two senders (alerts, callbacks) of one app."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.stop_event = threading.Event()
        self.worker = threading.Thread(target=loop, args=(ctx, self.stop_event), name="housekeeping", daemon=True)
        self.senders = [
            threading.Thread(target=n.run, args=(self.stop_event,), name=name, daemon=True)
            for n, name in ((ctx.notifier, "notify"), (ctx.callbacks, "callbacks"))
        ]

    def start(self) -> None:
        """Clear what a crash left mid-write, register new files (quick), then start both threads."""
        for folder in (self.ctx.settings.results_dir, self.ctx.layout.jobs_dir, self.ctx.layout.staged_folder):
            if folder.is_dir():
                remove_stale_temps(folder)
        self.ctx.scan()
        self.worker.start()
        for sender in self.senders:
            sender.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.ctx.wake()
        self.ctx.notifier.wake.set()
        self.ctx.callbacks.wake.set()
        self.worker.join(timeout=5)
        for sender in self.senders:
            sender.join(timeout=15)
        self.ctx.close()
