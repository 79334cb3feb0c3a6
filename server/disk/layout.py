"""Every folder and stem the server writes, in one place: uploaded jobs, long files' parts, results.

AUDIO_DIR/<path>                        the library (read only)
RESULTS_DIR/<stem>.<fmt>, .meta.json    a library file's transcripts (or beside its audio)
RESULTS_DIR/.parts/<file>/              a long file's cut audio and its parts' results, until stitched
RESULTS_DIR/.held/<task>/               results held for a check
DATA_DIR/staged/                        uploads' files written just before their transaction
DATA_DIR/jobs/<job>/source.<ext>        an uploaded job's audio (its name is metadata)
DATA_DIR/jobs/<job>/result.<fmt>        and its transcripts
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..ledger import TaskView
from .paths import safe_join
from .results import STAGED, ResultLayout

JOB_RESULT = "result"  # a job's transcripts: <job>/result.<fmt>, beside its audio <job>/source.<ext>


@dataclass(frozen=True)
class Layout:
    audio_dir: Path
    data_dir: Path
    results: ResultLayout  # RESULTS_DIR, RESULT_FORMATS, beside the audio or not

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def parts_dir(self) -> Path:
        return self.results.root / ".parts"

    def job_folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    @staticmethod
    def job_upload(job_id: str, name: str) -> str:
        """The upload's stored path, relative to the jobs folder (a task's `path`)."""
        return f"{job_id}/{name}"

    @staticmethod
    def job_result_stem(job_id: str) -> str:
        return f"{job_id}/{JOB_RESULT}"

    @property
    def staged_folder(self) -> Path:
        """Uploads' files written before their transaction (results.Staged): the server's own folder,
        never one in the operator's audio tree."""
        return self.data_dir / STAGED

    def can_stage(self, task: TaskView) -> bool:
        """A staged file goes into place by a rename: only onto DATA_DIR's file system (elsewhere the
        transaction writes the files itself)."""
        return _device(self.results_of(task).root) == _device(self.data_dir)

    def held_folder(self, task_id: str) -> Path:
        return self.results.root / ".held" / task_id

    def part_folder(self, file_id: str) -> Path:
        return self.parts_dir / file_id

    def root_of(self, task: TaskView) -> Path:
        """The folder a task's `path` is relative to."""
        return self.jobs_dir if task.job_id else self.audio_dir

    def audio_path(self, task: TaskView) -> Path:
        """The task's audio on disk (UnsafePath if it is, or leads, outside its folder)."""
        return safe_join(self.root_of(task), task.path)

    def results_of(self, task: TaskView) -> ResultLayout:
        """A part's results wait beside its siblings' for the stitch (every format); a job's go to its
        folder (every format: the caller picks one when fetching); a file's to RESULTS_DIR."""
        if task.parent_id:
            return ResultLayout(self.parts_dir)
        if task.job_id:
            return ResultLayout(self.jobs_dir)
        return self.results


@lru_cache(maxsize=64)
def _device(path: Path) -> int:
    """The file system `path` is on (or would be: its nearest existing folder's). Read once per
    folder and process, not twice per upload: should a mount change it later, the rename into
    place fails and the transaction writes the file itself (results.Staged.take)."""
    for p in (path, *path.parents):
        try:
            return p.stat().st_dev
        except FileNotFoundError:
            continue
    return -1
