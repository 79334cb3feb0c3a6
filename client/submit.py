"""`stt-client submit`: upload files as jobs (streamed: a multipart body made on the fly, never the
whole file in memory), follow them, and write their transcripts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .api import ServerAPI

CHUNK = 1024 * 1024
ENDED = ("done", "failed", "cancelled")


def multipart(path: Path, fields: dict[str, str], boundary: str) -> Iterator[bytes]:
    for name, value in fields.items():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    safe = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
    yield (head + "Content-Type: application/octet-stream\r\n\r\n").encode()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


@dataclass
class Submitter:
    api: ServerAPI

    def submit(self, path: Path, language: Optional[str], model: Optional[str], priority: Optional[int]) -> dict:
        fields = {k: str(v) for k, v in (("language", language), ("model", model), ("priority", priority)) if v}
        boundary = uuid.uuid4().hex
        r = self.api.session.post(
            f"{self.api.base}/api/v1/jobs",
            data=multipart(path, fields, boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=(10, 3600),
        )
        if r.status_code != 202:
            raise SubmitError(f"{path.name}: HTTP {r.status_code}: {_detail(r)}")
        job: dict = r.json()
        return job

    def status(self, job: dict) -> dict:
        r = self.api.session.get(job["status_url"], timeout=30)
        r.raise_for_status()
        status: dict = r.json()
        return status

    def wait(self, jobs: list[dict], on_progress: Callable[[dict], None], poll: float = 2.0) -> list[dict]:
        current = list(jobs)
        while True:
            current = [self.status(j) if j["state"] not in ENDED else j for j in current]
            for j in current:
                on_progress(j)
            if all(j["state"] in ENDED for j in current):
                return current
            time.sleep(poll)

    def fetch(self, job: dict, fmt: str) -> str:
        r = self.api.session.get(job["result_url"], params={"format": fmt}, timeout=60)
        if r.status_code != 200:
            raise SubmitError(f"{job['filename']}: no {fmt} result: HTTP {r.status_code}: {_detail(r)}")
        return r.text


class SubmitError(Exception):
    pass


def _detail(r: Any) -> str:
    try:
        return str(r.json().get("detail", r.text))[:300]
    except ValueError:
        return str(r.text)[:300]
