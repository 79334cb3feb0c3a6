"""Processing windows: CRON says when a window opens, PROCESSING_HOURS how long it stays open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]  # minute hour day-of-month month day-of-week


class WindowError(ValueError):
    pass


def _field(spec: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in spec.split(","):
        body, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if body == "*":
            start, end = lo, hi
        elif "-" in body:
            start, end = (int(x) for x in body.split("-", 1))
        else:
            start = end = int(body)
        if not (lo <= start <= end <= hi + (1 if hi == 6 else 0)) or step < 1:
            raise ValueError(part)
        values.update(7 % 7 if v == 7 else v for v in range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Window:
    fields: tuple[frozenset[int], ...]
    hours: float

    @classmethod
    def parse(cls, cron: str, hours: str) -> Optional[Window]:
        if not cron:
            if hours:
                raise WindowError("PROCESSING_HOURS needs CRON (when the window opens), e.g. CRON='0 22 * * *'")
            return None
        parts = cron.split()
        if len(parts) != 5:
            raise WindowError(f"CRON={cron!r} must have 5 fields: minute hour day month weekday")
        try:
            fields = tuple(_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True))
        except ValueError as e:
            raise WindowError(f"CRON={cron!r}: cannot read {e}") from None
        try:
            h = float(hours or "1")
        except ValueError:
            raise WindowError(f"PROCESSING_HOURS={hours!r} is not a number") from None
        if not 0 < h <= 24 * 7:
            raise WindowError("PROCESSING_HOURS must be between 0 and 168")
        return cls(fields, h)

    def _fires(self, t: datetime) -> bool:
        minute, hour, dom, month, dow = self.fields
        return (
            t.minute in minute and t.hour in hour and t.day in dom and t.month in month and (t.weekday() + 1) % 7 in dow
        )

    def is_open(self, now: Optional[datetime] = None) -> bool:
        """Open if the schedule fired within the last PROCESSING_HOURS."""
        now = (now or datetime.now()).replace(second=0, microsecond=0)
        return any(self._fires(now - timedelta(minutes=m)) for m in range(int(self.hours * 60)))

    def seconds_until_open(self, now: Optional[datetime] = None, horizon_days: int = 8) -> float:
        start = (now or datetime.now()).replace(second=0, microsecond=0)
        for m in range(1, horizon_days * 24 * 60):
            if self._fires(start + timedelta(minutes=m)):
                return m * 60.0
        return 3600.0
