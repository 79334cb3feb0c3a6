"""Group commit: uploaded results are booked in batches, one worker-thread hop and one commit each.

Booked one by one on the event loop, each result cost four flushes that every other write waited
for: its transcript's, its meta's, their folder's and the commit's. Now an upload queues; one drain
task takes what has queued, writes and flushes the batch's files in one worker thread (the GIL is
released while the disk works, so claims go on meanwhile), then books the batch in one transaction
whose verdicts only move the staged files into place, flushes their folders once and commits once.
An upload is still answered only once its files and its booking are on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import anyio.to_thread

from stt_common.files import fsync_dir

from .disk.upload import Upload
from .ledger import Completion, Ledger, Made, TaskState

MAX_BATCH = 64  # results a transaction books at most: the event loop waits for it on SQLite

Result = tuple[str, Upload, Optional[Made]]  # a lease's token, the upload, what made it
Queued = tuple[str, Upload, Optional[Made], "asyncio.Future[Completion]"]
Outcome = Union[Completion, Exception]


@dataclass
class GroupCommit:
    ledger: Ledger
    _queue: list[Queued] = field(default_factory=list)
    _drain: Optional[asyncio.Task[None]] = None

    async def complete(self, token: str, upload: Upload, made: Optional[Made]) -> Completion:
        """Book a result to the lease `token` with the next batch (leases.complete_all)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()
        self._queue.append((token, upload, made, future))
        if self._drain is None:
            self._drain = loop.create_task(self._drain_queue())
        # A client that hangs up is booked all the same (its retry is then a duplicate).
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for what is queued to be booked (the app's shutdown)."""
        while self._drain is not None:
            await asyncio.shield(self._drain)

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._commit(batch)
        finally:
            self._drain = None

    async def _commit(self, batch: list[Queued]) -> None:
        results = [(token, upload, made) for token, upload, made, _ in batch]
        try:
            if self.ledger.db.dialect == "sqlite":  # one writer: book on the loop, as every write
                staged = await anyio.to_thread.run_sync(self._stage, results)
                outcomes = self._book(staged)
            else:  # each statement a round trip: stage and book in the same worker
                outcomes = await anyio.to_thread.run_sync(lambda: self._book(self._stage(results)))
        except Exception as e:  # the batch's transaction failed: every upload in it gets the error
            outcomes = [e] * len(batch)
        for (_, _, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _stage(self, results: Sequence[Result]) -> list[Result]:
        """Each result's files written and flushed for the task its lease is for (a repeat or an
        unknown lease is left as it is: the booking answers it)."""
        tasks = self.ledger.leases.leased_tasks([token for token, _, _ in results])
        staged: list[Result] = []
        for token, upload, made in results:
            task = tasks.get(token)
            if task is not None and task.state != TaskState.DONE:
                try:
                    upload = upload.staged_for(task)
                except OSError:  # the booking writes them itself, and reports what fails then
                    pass
            staged.append((token, upload, made))
        return staged

    def _book(self, staged: Sequence[Result]) -> list[Outcome]:
        uploads = [upload for _, upload, _ in staged]

        def flush_folders() -> None:
            folders: set[Path] = set()
            for upload in uploads:
                if upload.staged is not None:
                    folders |= upload.staged.folders
            for folder in folders:
                fsync_dir(folder)

        try:
            return self.ledger.leases.complete_all(staged, flush_folders)
        finally:
            for upload in uploads:
                upload.discard()
