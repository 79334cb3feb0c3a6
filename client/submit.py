"""`stt-client submit`: upload files as jobs, follow them, and fetch their transcripts (through
ServerAPI, like the daemon)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .api import Rejected, ServerAPI, Transient

ENDED = ("done", "failed", "cancelled")


class SubmitError(Exception):
    pass


@dataclass
class Submitter:
    api: ServerAPI

    def submit(self, path: Path, language: Optional[str], model: Optional[str], priority: Optional[int]) -> dict:
        fields = {k: str(v) for k, v in (("language", language), ("model", model), ("priority", priority)) if v}
        try:
            return self.api.submit_job(path, fields)
        except (Transient, Rejected) as e:
            raise SubmitError(f"{path.name}: {e}") from None

    def wait(self, jobs: list[dict], on_progress: Callable[[dict], None], poll: float = 2.0) -> list[dict]:
        current = list(jobs)
        while True:
            try:
                current = [self.api.job(j["status_url"]) if j["state"] not in ENDED else j for j in current]
            except (Transient, Rejected) as e:
                raise SubmitError(f"cannot follow the jobs: {e}") from None
            for j in current:
                on_progress(j)
            if all(j["state"] in ENDED for j in current):
                return current
            time.sleep(poll)

    def fetch(self, job: dict, fmt: str) -> str:
        try:
            return self.api.job_result(job["result_url"], fmt)
        except (Transient, Rejected) as e:
            raise SubmitError(f"{job['filename']}: no {fmt} result: {e}") from None
