"""A durable outbox: a finished transcript or error report is on disk before any upload is tried,
and leaves only once the server has acknowledged it (or refused it for good, then kept aside)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from stt_common.files import fsync_dir

from .api import LeaseLost, Rejected, ServerAPI

log = logging.getLogger("batch-stt.outbox")


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str  # "result" or "error"
    task_id: str
    token: str
    body: dict

    def files(self) -> dict[str, Path]:
        return {p.suffix[1:]: p for p in sorted(self.path.glob("out.*"))}


class Outbox:
    def __init__(self, root: Path, on_refused: Callable[[Entry, str], None] = lambda entry, reason: None):
        self.root = root
        self.on_refused = on_refused  # the volunteer hears of it (Gotify)
        self.rejected = root / "rejected"
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # a kill mid-write: never complete, never acknowledged
            shutil.rmtree(stale, ignore_errors=True)

    def _put(self, kind: str, task_id: str, token: str, body: dict, files: dict[str, bytes]) -> Entry:
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        for fmt, data in files.items():
            with open(tmp / f"out.{fmt}", "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / "entry.json", "w", encoding="utf-8") as f:
            json.dump({"kind": kind, "task_id": task_id, "token": token, "body": body}, f)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        final = self.root / f"{time.time_ns()}-{task_id}-{kind}"
        os.rename(tmp, final)  # the entry appears whole or not at all
        fsync_dir(self.root)
        return self._load(final)

    def put_result(self, task_id: str, token: str, files: dict[str, bytes], meta: dict) -> Entry:
        return self._put("result", task_id, token, meta, files)

    def put_error(self, task_id: str, token: str, message: str, stderr_tail: Optional[str], retryable: bool) -> Entry:
        return self._put(
            "error", task_id, token, {"message": message, "stderr_tail": stderr_tail, "retryable": retryable}, {}
        )

    @staticmethod
    def _load(path: Path) -> Entry:
        data = json.loads((path / "entry.json").read_text(encoding="utf-8"))
        return Entry(path, data["kind"], data["task_id"], data["token"], data["body"])

    def pending(self) -> list[Entry]:
        entries = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith(".tmp-") and p != self.rejected and (p / "entry.json").is_file():
                entries.append(self._load(p))
        return entries

    def send(self, api: ServerAPI, entry: Entry) -> str:
        """Deliver one entry. Transient errors propagate: the entry stays for the next try."""
        try:
            if entry.kind == "result":
                reply = api.upload_result(entry.token, entry.files(), json.dumps(entry.body))
                outcome = reply.get("status", "accepted") + (" (late)" if reply.get("late") else "")
            else:
                b = entry.body
                reply = api.report_error(entry.token, b["message"], b.get("stderr_tail"), b.get("retryable", False))
                outcome = f"error recorded, task {reply.get('task_state')}"
        except LeaseLost as e:
            if entry.kind == "error":  # the lease is gone anyway: nothing left to tell
                outcome = f"dropped ({e})"
            else:
                self._keep_aside(entry, str(e))
                return f"refused, kept in {self.rejected}: {e}"
        except Rejected as e:
            self._keep_aside(entry, str(e))
            return f"refused, kept in {self.rejected}: {e}"
        self._remove(entry.path)
        return outcome

    def _remove(self, path: Path) -> None:
        """Gone at once (a rename), then deleted: a kill in the middle of deleting must not leave an
        entry.json without its transcript, to be sent again as an empty result."""
        doomed = path.with_name(f".tmp-{path.name}")
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def _keep_aside(self, entry: Entry, reason: str) -> None:
        """A result the server will never take is still somebody's work: keep it for the operator."""
        self.rejected.mkdir(exist_ok=True)
        (entry.path / "refused.txt").write_text(reason + "\n", encoding="utf-8")
        os.rename(entry.path, self.rejected / entry.path.name)
        log.error("server refused %s for task %s: %s", entry.kind, entry.task_id, reason)
        self.on_refused(entry, reason)
