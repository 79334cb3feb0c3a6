"""What the dashboard shows, gathered from the ledger and put in words and figures a person reads.
No HTML here (server/http/templates/), no HTTP (server/http/dashboard.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from ..ledger import Ledger, TaskState, VolunteerView

VOLUNTEERS_SHOWN = 50

# The cards: each the states it adds up.
GROUPS = {
    "done": (TaskState.DONE,),
    "in_progress": (TaskState.LEASED, TaskState.SPLIT, TaskState.CHECKING),
    "queued": (TaskState.QUEUED,),
    "failed": (TaskState.FAILED,),
    "held": (TaskState.HELD,),
}


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def stalled_text(n: int) -> str:
    """What the operator is told of held results that no host seen in the last hour may check."""
    return (
        f"{n} held result(s) wait for a check that no host seen in the last hour may make: only their own "
        "host may take their task (its language or model tier). Add a host that may, or set VALIDATION=off."
    )


def ago(ts: float, now: float) -> str:
    return f"{duration(max(0.0, now - ts))} ago"


@dataclass(frozen=True)
class Page:
    files: dict[str, int]
    hours: dict[str, str]  # audio, as a duration
    last_hour: str  # audio done in the last hour
    done_last_hour: int
    eta: str
    hosts: list[dict[str, Any]]
    volunteers: list[VolunteerView]
    long_files: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    events: list[dict[str, Any]]
    stalled: str  # held results no host seen may check: what to do; "" when there are none


def gather(ledger: Ledger, events: list[dict[str, Any]], now: Optional[float] = None) -> Page:
    now = time.time() if now is None else now
    ov = ledger.reports.overview()
    work = ledger.reports.active_work()
    hosts = [
        {
            "name": h.name,
            "backend": h.backend or "?",
            "model": h.model or "?",
            "speed": f"{h.speed:.1f}x" if h.speed else (f"{h.bench_rtf:.1f}x (bench)" if h.bench_rtf else "not yet"),
            "done": h.tasks_done,
            "failed": h.tasks_failed,
            "trust": "trusted" if h.trusted else f"checked ({h.valid_streak} confirmed)",
            "invalid": h.invalid_results,
            "work": [{"path": p, "progress": round(pr or 0), "paused": why} for p, pr, why in work.get(h.name, [])],
            "last_seen": ago(h.last_seen, now),
            "cooling": time.strftime("%H:%M", time.localtime(h.cooldown_until))
            if h.cooldown_until and h.cooldown_until > now
            else "",
        }
        for h in ledger.fleet.hosts()
    ]
    long_files = [
        {
            "path": f.path,
            "length": duration(f.duration_ms / 1000 if f.duration_ms else None),
            "parts_done": f.parts_done,
            "parts": f.parts,
            "speakers": ", ".join(f.speakers),
            "percent": round(100 * f.parts_done / f.parts) if f.parts else 0,
        }
        for f in ledger.reports.split_files()
    ]
    failed = [
        {"id": t.id, "path": t.path, "attempts": t.attempts, "error": (t.last_error or "")[-600:]}
        for t in ledger.reports.tasks(TaskState.FAILED, limit=50)
    ]
    shown = [
        {
            "time": time.strftime("%H:%M:%S", time.localtime(e["ts"])),
            "event": e["event"],
            "task": e.get("task", ""),
            "client": e.get("client", ""),
            "detail": ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("ts", "event", "task", "client")),
        }
        for e in reversed(events)
    ]
    return Page(
        files={g: sum(ov.files[s] for s in states) for g, states in GROUPS.items()},
        hours={g: duration(sum(ov.audio_seconds[s] for s in states)) for g, states in GROUPS.items()},
        last_hour=duration(ov.audio_last_hour),
        done_last_hour=ov.done_last_hour,
        eta=duration(ov.eta_seconds) if ov.eta_seconds else ("done" if ov.eta_seconds == 0 else "unknown"),
        hosts=hosts,
        volunteers=ledger.volunteers.board()[:VOLUNTEERS_SHOWN],
        long_files=long_files,
        failed=failed,
        events=shown,
        stalled=stalled_text(n) if (n := len(ledger.reports.stalled_checks())) else "",
    )
