"""The volunteers' credit, as volunteer grids keep it: audio hours transcribed, results delivered
and confirmed, and a recent average that halves every 7 days (BOINC's RAC), per volunteer: the
credentials a host leased with, or the host itself behind a proxy alone.

Accepted results count (their audio hours, and as valid); one held for a check counts as delivered
until its verdict; an outvoted one stays delivered and never valid. Summed by day in SQL, decayed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .database import Database
from .fleet import capabilities
from .sql import volunteers as sql
from .states import AttemptState

HALF_LIFE_DAYS = 7.0


@dataclass(frozen=True)
class VolunteerView:
    name: str  # the display name a host of theirs sent, else the credentials' (or host's) name
    audio_hours: float
    results: int  # delivered
    valid_results: int  # accepted
    recent_hours_per_day: float  # audio hours a day, averaged with a 7-day half-life
    hosts: int
    backends: tuple[str, ...]
    key: str = field(default="", repr=False)  # the credentials' or host's name (matches `you`)


@dataclass
class _Tally:
    seconds: float = 0.0
    results: int = 0
    valid: int = 0
    recent: float = 0.0
    hosts: set[str] = field(default_factory=set)


class Volunteers:
    def __init__(self, db: Database, clock: Callable[[], float]):
        self.db = db
        self.clock = clock

    def board(self) -> list[VolunteerView]:
        """Every volunteer with a delivered result, most audio hours first."""
        now_days = self.clock() / 86400.0
        tallies: dict[str, _Tally] = {}
        with self.db.reading() as c:
            rows = c.execute(sql.results_by_day).all()
            hosts = {h.name: (capabilities(h.capabilities), h.last_seen) for h in c.execute(sql.hosts)}
        for r in rows:
            t = tallies.setdefault(r.volunteer, _Tally())
            t.results += int(r.results)
            t.hosts.add(r.client)
            if r.state == AttemptState.COMPLETED:
                t.valid += int(r.results)
                t.seconds += float(r.seconds)
                age = max(0.0, now_days - (int(r.day) + 0.5))  # the day's middle
                t.recent += float(r.seconds) / 3600 * math.log(2) / HALF_LIFE_DAYS * 2 ** (-age / HALF_LIFE_DAYS)
        board = [self._view(key, t, hosts) for key, t in tallies.items()]
        return sorted(board, key=lambda v: (-v.audio_hours, v.key))

    @staticmethod
    def _view(key: str, t: _Tally, hosts: dict[str, tuple[dict, float]]) -> VolunteerView:
        known = sorted((hosts[h] for h in t.hosts if h in hosts), key=lambda caps_seen: -caps_seen[1])
        names = [str(caps.get("display_name") or "").strip() for caps, _ in known]
        backends = sorted({str(caps.get("backend") or "") for caps, _ in known} - {""})
        return VolunteerView(
            name=next((n for n in names if n), key),
            audio_hours=round(t.seconds / 3600, 3),
            results=t.results,
            valid_results=t.valid,
            recent_hours_per_day=round(t.recent, 3),
            hosts=len(t.hosts),
            backends=tuple(backends),
            key=key,
        )
