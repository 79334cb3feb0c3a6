"""A client's uploaded result, written where the ledger's verdict says (ledger.Results): kept as
the task's, held under RESULTS_DIR/.held/<task>/ for a check, compared with a held one, or a held
one promoted. Runs inside the completion's transaction, under the task's lock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Optional

from stt_common.formats import RESULT_FORMATS

from ..ledger import TaskView
from ..transcripts.compare import Timed, distance, spot_distance, text_of, timed_words
from .layout import Layout
from .results import META, ResultLayout, Staged, stage


@dataclass(frozen=True)
class Upload:
    layout: Layout
    files: Mapping[str, bytes]
    meta: dict[str, Any]
    max_wer: float  # VALIDATE_WER: two results agree within it
    staged: Optional[Staged] = None  # its files already on disk (staged_for)

    def staged_for(self, task: TaskView) -> Upload:
        """This upload with its files, and the meta that keeping it for `task` writes, already
        written (for the caller to flush): done before the transaction and off the event loop
        (group_commit.py)."""
        if not self.layout.can_stage(task):
            return self
        files = {f: data for f, data in self.files.items() if f in RESULT_FORMATS}
        meta = self.layout.results_of(task).meta(self._meta(task), files)
        return replace(self, staged=stage(self.layout.staged_folder, {**files, META: meta}))

    def discard(self) -> None:
        """Staged files the verdict did not take."""
        if self.staged is not None:
            self.staged.discard()

    def _meta(self, task: TaskView) -> dict[str, Any]:
        meta = {**self.meta, "task_id": task.id, "path": task.path, "attempt": task.attempts}
        if not task.is_spot(meta.pop("spot", None)):
            return meta
        return {**meta, "spot": list(task.spot or ())}  # its timestamps count from the range's start

    def _held(self, task: TaskView) -> ResultLayout:
        return ResultLayout(self.layout.held_folder(task.id))

    def keep(self, task: TaskView) -> None:
        self.layout.results_of(task).write(task.result_stem, self.files, self._meta(task), self.staged)

    def hold(self, task: TaskView, attempt_id: int) -> None:
        self._held(task).write(str(attempt_id), self.files, self._meta(task), self.staged)

    def agrees(self, task: TaskView, attempt_id: int) -> bool:
        """Whole texts; or, while the task's checks are spot checks, the words in their range."""
        meta, held = self._held(task).read(str(attempt_id))
        mine = {f: data.decode("utf-8", "replace") for f, data in self.files.items()}
        if task.spot is None:
            return distance(text_of(held), text_of(mine)) <= self.max_wer
        theirs, ours = _timed(task, held, meta), _timed(task, mine, self._meta(task))
        return spot_distance(theirs, ours, *task.spot) <= self.max_wer

    def reopen(self, task: TaskView, attempt_id: int) -> bool:
        try:
            meta, kept = self.layout.results_of(task).read(task.result_stem)
        except (OSError, ValueError, KeyError):  # removed or unreadable: nothing left to check
            return False
        meta.pop("formats", None)
        self._held(task).write(str(attempt_id), {f: text.encode("utf-8") for f, text in kept.items()}, meta)
        return True

    def promote(self, task: TaskView, attempt_id: int) -> None:
        meta, held = self._held(task).read(str(attempt_id))
        meta.pop("formats", None)
        files = {f: text.encode("utf-8") for f, text in held.items()}
        self.layout.results_of(task).write(task.result_stem, files, {**meta, "checked": True})


def _timed(task: TaskView, files: dict[str, str], meta: dict[str, Any]) -> Timed:
    if task.spot is not None and task.is_spot(meta.get("spot")):
        start, end = task.spot
        return timed_words(files, end - start, start)
    return timed_words(files, task.seconds)
