"""Reading the ledger for people and dashboards: one task, pages of tasks, totals. Never locks writers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from .database import Database
from .fleet import capabilities, reach
from .policy import Reach
from .rows import task_row
from .sql import fleet as sql_fleet
from .sql import overview as sql_overview
from .sql import parts as sql_parts
from .sql import reports as sql_reports
from .sql import validation as sql_validation
from .states import TaskState
from .summaries import Overview, SplitFile, StalledCheck, Stats
from .values import TaskView


class Reports:
    def __init__(self, db: Database, clock: Callable[[], float]):
        self.db = db
        self.clock = clock

    def task(self, task_id: str) -> TaskView:
        with self.db.reading() as c:
            return task_row(c, task_id)

    def tasks(self, state: Optional[TaskState] = None, limit: int = 1000, offset: int = 0) -> list[TaskView]:
        page = {"limit": limit, "offset": offset}
        with self.db.reading() as c:
            rows = (
                c.execute(sql_reports.all_tasks_page, page)
                if state is None
                else c.execute(sql_reports.tasks_in_state_page, {**page, "state": TaskState(state).value})
            )
            return [TaskView.from_row(r) for r in rows]

    def stats(self, active_window: float = 900.0) -> Stats:
        since = self.clock() - active_window
        with self.db.reading() as c:
            counts = dict.fromkeys(TaskState, 0)
            counts.update({TaskState(state): n for state, n in c.execute(sql_reports.count_by_state)})
            seconds_done, bytes_done = c.execute(sql_reports.done_totals).one()
            bytes_left = c.execute(sql_reports.bytes_left).scalar_one()
            clients = list(c.execute(sql_reports.active_clients, {"since": since}).scalars())
            active = c.execute(sql_reports.count_active_attempts).scalar_one()
            replicas, won = c.execute(sql_fleet.replica_totals).one()
            checked = float(c.execute(sql_validation.check_seconds).scalar_one())
        return Stats(
            counts,
            float(seconds_done),
            int(bytes_done),
            int(bytes_left),
            clients,
            int(active),
            replicas,
            int(won),
            checked,
        )

    def overview(self, window: float = 3600.0) -> Overview:
        since = self.clock() - window
        with self.db.reading() as c:
            files = dict.fromkeys(TaskState, 0)
            files.update({TaskState(state): n for state, n in c.execute(sql_overview.files_by_state)})
            audio = dict.fromkeys(TaskState, 0.0)
            audio.update({TaskState(state): ms / 1000 for state, ms in c.execute(sql_overview.audio_by_state)})
            n, ms = c.execute(sql_overview.done_since, {"since": since}).one()
        return Overview(files, audio, int(n), ms / 1000)

    def stalled_checks(self, window: float = 3600.0) -> list[StalledCheck]:
        """Held results no host seen within `window` may check (validation.py). A fleet with one host
        that may take a language or a model tier holds that host's results for good: the operator
        must hear of it (add such a host, or VALIDATION=off)."""
        with self.db.reading() as c:
            held = c.execute(sql_validation.waiting_checks).all()
            if not held:
                return []
            answered: dict[str, set[str]] = {}
            for task_id, name in c.execute(sql_validation.answered_checks):
                answered.setdefault(task_id, set()).add(name)
            seen = c.execute(sql_validation.seen_hosts, {"since": self.clock() - window}).all()
        classes: dict[Reach, set[str]] = {}  # hosts by what they may take: a few kinds, however many hosts
        for name, caps in seen:
            classes.setdefault(reach(capabilities(caps)), set()).add(name)
        return [
            StalledCheck(r.id, r.path, r.start_ms, r.language, r.updated_at)
            for r in held
            if not any(
                kind.takes(r.language, r.min_tier, r.translate) and names - answered.get(r.id, set())
                for kind, names in classes.items()
            )
        ]

    def work_left(self) -> bool:
        """Any task queued, leased or in parts: cheap enough to ask after every result."""
        with self.db.reading() as c:
            return c.execute(sql_overview.work_left).first() is not None

    def split_files(self, limit: int = 50) -> list[SplitFile]:
        """Files still in parts (or failed), with how many of their parts are done, and their speakers."""
        with self.db.reading() as c:
            rows = c.execute(sql_overview.split_files, {"limit": limit}).all()
            ids = [r.id for r in rows]
            progress = {fid: (int(done), int(n)) for fid, n, done in c.execute(sql_parts.file_progress, {"ids": ids})}
            speakers: dict[str, list[str]] = {}
            for fid, speaker in c.execute(sql_parts.file_speakers, {"ids": ids}):
                speakers.setdefault(fid, []).append(speaker)
        return [
            SplitFile(
                r.id,
                r.path,
                TaskState(r.state),
                r.duration_ms,
                *progress.get(r.id, (0, 0)),
                tuple(speakers.get(r.id, ())),
            )
            for r in rows
        ]

    def active_work(self) -> dict[str, list[tuple[str, Optional[float], Optional[str]]]]:
        """host -> [(what it holds: a path, or a part's path and range; its progress %; why it is paused)]"""
        work: dict[str, list[tuple[str, Optional[float], Optional[str]]]] = {}
        with self.db.reading() as c:
            for r in c.execute(sql_overview.active_work):
                who = f", {r.speaker}" if r.speaker else ""
                part = f" [{r.start_ms // 1000}-{r.end_ms // 1000} s{who}]" if r.start_ms is not None else ""
                work.setdefault(r.client, []).append((r.path + part, r.progress, r.paused))
        return work
