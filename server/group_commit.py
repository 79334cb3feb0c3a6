"""Group commit: claims and uploaded results are written in batches, one transaction for all that
queued while the one before was written.

Each request was its own transaction on the event loop, whose begin, commit and lock cost more than
a claim's own statements; a result's cost four flushes every other write waited for (its
transcript's, its meta's, their folder's and the commit's). Now a request queues and one drain task
writes what has queued. A batch of results first has its files written and flushed in one worker
thread (the GIL is released while the disk works, so claims go on meanwhile); its transaction then
only moves them into place, flushes their folders once and commits once. An upload is still
answered only once its files and its booking are on disk.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar, Union

import anyio.to_thread

from stt_common.files import fsync_path

from .disk.upload import Upload
from .ledger import Ask, Claimed, Completion, Ledger, Made, TaskState

log = logging.getLogger("batch-stt.server")
MAX_BATCH = 64  # requests a transaction writes at most: the event loop waits for it on SQLite

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")
Result = tuple[str, Upload, Optional[Made]]  # a lease's token, the upload, what made it


async def on_writer(ledger: Ledger, operation: Callable[..., T], *args: Any) -> T:
    """Run a ledger write from the event loop.

    SQLite: right here on the loop. Its writes are serialised anyway and take a fraction of a
    millisecond, while a thread-pool hop (and the GIL contention of dozens of waiting threads) cost
    more than the write: inline, the lease cycle ran 1.6x faster. PostgreSQL: in the thread pool,
    since each statement is a network round trip and claims may overlap.
    """
    if ledger.db.dialect == "sqlite":
        return operation(*args)
    return await anyio.to_thread.run_sync(functools.partial(operation, *args))


@dataclass
class Batcher(Generic[In, Out]):
    """Requests queue; one drain task hands what has queued to `write`, a batch at a time, and
    answers each request with its own outcome (an exception: that request's alone)."""

    write: Callable[[list[In]], Awaitable[Sequence[Union[Out, Exception]]]]
    _queue: list[tuple[In, asyncio.Future[Out]]] = field(default_factory=list)
    _drain: Optional[asyncio.Task[None]] = None

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._queue.append((item, future))
        if self._drain is None:
            self._drain = loop.create_task(self._drain_queue())
        # A client that hangs up is written all the same (its retry is then a duplicate).
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for what is queued to be written (the app's shutdown)."""
        while self._drain is not None:
            await asyncio.shield(self._drain)

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    outcomes = await self.write([item for item, _ in batch])
                except Exception as e:  # the batch's transaction failed: every request in it gets the error
                    outcomes = [e] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._drain = None


def claims(ledger: Ledger) -> Batcher[Ask, Claimed]:
    return Batcher(functools.partial(_claim_batch, ledger, _Reader()))


@dataclass
class _Reader:
    """The fleet's snapshot read anew (tens of ms with 10,000 hosts) in a worker thread, while the
    claims go on with the old one: a batch that waited for it held every host's claim that long."""

    task: Optional[asyncio.Task[None]] = None

    async def refresh(self, ledger: Ledger) -> None:
        snapshots = ledger.leases.snapshots
        if not snapshots.due():
            return
        self.task = asyncio.create_task(anyio.to_thread.run_sync(snapshots.read))
        self.task.add_done_callback(_report)
        if not snapshots.ready:  # the first read: there is nothing to claim with before it
            await asyncio.shield(self.task)


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:  # the next due claim reads again
        log.error("reading the fleet failed: %s", task.exception())


async def _claim_batch(ledger: Ledger, reader: _Reader, asks: list[Ask]) -> list[Union[Claimed, Exception]]:
    await reader.refresh(ledger)
    return await on_writer(ledger, ledger.leases.claim_all, asks)


def results(ledger: Ledger) -> Batcher[Result, Completion]:
    return Batcher(functools.partial(_book_results, ledger))


async def _book_results(ledger: Ledger, batch: list[Result]) -> list[Union[Completion, Exception]]:
    if ledger.db.dialect == "sqlite":  # one writer: book on the loop, as every write
        return _book(ledger, await anyio.to_thread.run_sync(_stage, ledger, batch))
    return await anyio.to_thread.run_sync(lambda: _book(ledger, _stage(ledger, batch)))  # one hop for both


def _stage(ledger: Ledger, batch: Sequence[Result]) -> list[Result]:
    """Each result's files written for the task its lease is for, then all of them flushed (a repeat
    or an unknown lease is left as it is: the booking answers it)."""
    tasks = ledger.leases.leased_tasks([token for token, _, _ in batch])
    staged: list[Result] = []
    for token, upload, made in batch:
        task = tasks.get(token)
        if task is not None and task.state != TaskState.DONE:
            try:
                upload = upload.staged_for(task)
            except OSError:  # the booking writes them itself, and reports what fails then
                pass
        staged.append((token, upload, made))
    try:
        for path in [path for _, u, _ in staged if u.staged for path, _ in u.staged.files.values()]:
            fsync_path(path)
    except OSError:  # none of them staged, then
        for _, upload, _ in staged:
            upload.discard()
        return list(batch)
    return staged


def _book(ledger: Ledger, staged: Sequence[Result]) -> list[Union[Completion, Exception]]:
    uploads = [upload for _, upload, _ in staged]

    def flush_folders() -> None:
        folders: set[Path] = set()
        for upload in uploads:
            if upload.staged is not None:
                folders |= upload.staged.folders
        for folder in folders:
            fsync_path(folder)

    try:
        return ledger.leases.complete_all(staged, flush_folders)
    finally:
        for upload in uploads:
            upload.discard()
