"""What the ledger knows about hosts: how fast each one is, and which are cooling down.

Speeds are measured by the server, never taken from the client's word (a volunteer must not be
able to claim to be fastest to attract work and replicas): the task's probed length over the time
from its grant (or from the host's previous result, for a task it prefetched) to its result, per
model and backend as the result names them (a client that fell back from GPU to CPU says cpu). They
are decayed sums, so a long task weighs more than a short one whose model load dominates, and a
machine that got slower (a laptop on battery) is believed within a few results. A host's benchmark
(`rtf`) is only a first guess, clamped to twice the fastest speed measured in the fleet.

A host earns a strike when another host transcribes a task on which its attempt failed or expired:
failing a file that nobody can read is the file's fault, not the host's. After COOLDOWN_STRIKES
strikes in a row it gets no work for COOLDOWN_SECONDS, doubled for each cool-down in a row (to a
day at most); each success earns back one doubling. An operator can clear it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .database import Database
from .events import Event, EventLog
from .policy import Reach
from .sql import fleet as sql_fleet
from .sql import leases as sql_leases
from .sql.run import Tx
from .summaries import HostView
from .tiers import model_tier

DECAY = 0.7  # each older result counts this much less than the next one
MAX_COOLDOWN = 24 * 3600.0
# A benchmark nobody has checked yet: at most this, or twice the fastest speed measured.
MIN_GUESS, MAX_GUESS = 0.05, 1000.0


@dataclass(frozen=True)
class CooldownRule:
    strikes: int = 3
    seconds: float = 600.0  # the first cool-down; 0 turns cool-downs off

    def length(self, cooldowns_before: int) -> float:
        return min(MAX_COOLDOWN, self.seconds * 2 ** min(cooldowns_before, 20))


def capabilities(raw: Optional[str]) -> dict[str, Any]:
    try:
        caps = json.loads(raw or "{}")
    except ValueError:
        return {}
    return caps if isinstance(caps, dict) else {}


def reach(caps: Optional[dict[str, Any]], languages: Optional[Sequence[str]] = None) -> Reach:
    """What a host may take, from what it sent with its lease request (None: a legacy client, which
    names no model: tier 0). English-only models take English and undetected-language tasks, and
    translate nothing; a client translates only if it says so (older ones do not know how)."""
    caps = caps or {}
    if languages is None:
        if caps.get("english_only"):
            languages = ("en",)
        elif isinstance(caps.get("languages"), list):
            languages = caps["languages"]
    langs = None if languages is None else frozenset({*languages, "auto"})
    translates = caps.get("translate") is True and not caps.get("english_only")
    return Reach(langs, model_tier(caps.get("model")), translates)


def first_guess(rtf: Any, fastest_measured: float) -> Optional[float]:
    """A benchmark's speed as the scheduler may believe it before any result is measured."""
    if not isinstance(rtf, (int, float)) or not rtf > 0:
        return None
    return max(MIN_GUESS, min(float(rtf), 2 * fastest_measured if fastest_measured else MAX_GUESS))


def speed_key(name: str, caps: dict[str, Any]) -> tuple[str, str, str]:
    return name, str(caps.get("model") or ""), str(caps.get("backend") or "")


def learned_speeds(c: Tx) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(client, model, backend) -> (audio seconds per second, results it was learned from)."""
    rows = c.execute(sql_fleet.speeds).all()
    return {
        (r.client, r.model, r.backend): (r.audio_seconds / r.processing_seconds, r.samples)
        for r in rows
        if r.processing_seconds > 0
    }


class Fleet:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        clock: Callable[[], float],
        rule: CooldownRule,
        trusted: Callable[[int], bool] = lambda streak: False,
    ):
        self.db = db
        self.events = events
        self.clock = clock
        self.trusted = trusted  # validation's rule (ValidationRule.trusted): is a run of confirmed results trust
        self.rule = rule

    # --- inside the lease transactions -------------------------------------------------------

    def touch(self, c: Tx, name: str, now: float, caps: Optional[dict[str, Any]]) -> Optional[float]:
        """Record that `name` asked for work (with these capabilities); returns its cool-down's end."""
        if caps is None:  # a legacy client: nothing to record
            return c.execute(sql_fleet.cooldown_of, {"cname": name}).scalar()
        text = json.dumps(caps, sort_keys=True)
        row = c.execute(sql_leases.touch_client, {"cname": name, "caps": text, "now": now}).first()
        if row is not None:
            return row[0]
        values = {"capabilities": text, "first_seen": now, "last_seen": now, "tasks_done": 0, "tasks_failed": 0}
        c.execute(sql_leases.insert_client, {"name": name, **values})
        return None

    def learn(
        self, c: Tx, client: str, *, model: str, backend: str, audio_seconds: float, granted_at: float, now: float
    ) -> None:
        """Measure `client` on a result: `audio_seconds` of the task's own probed length, done between
        its grant (or the host's previous result, if later) and now."""
        key = {"cname": client, "m": model, "b": backend}
        previous = c.execute(sql_fleet.last_result_at, key).scalar()
        processing = now - max(granted_at, previous or 0.0)
        if audio_seconds <= 0 or processing <= 0:
            return
        sums = {"audio": audio_seconds, "processing": processing}
        if not c.execute(sql_fleet.learn_speed, {**key, **sums, "decay": DECAY, "now": now}).rowcount:
            c.execute(
                sql_fleet.insert_speed,
                {
                    "client": client,
                    "model": model,
                    "backend": backend,
                    "audio_seconds": audio_seconds,
                    "processing_seconds": processing,
                    "samples": 1,
                    "updated_at": now,
                },
            )

    def succeeded(self, c: Tx, task_id: str, client: str, now: float) -> list[tuple[str, float]]:
        """`client` transcribed `task_id`: credit and forgive it, strike those who failed it. Returns
        the hosts that start a cool-down now, with its end."""
        c.execute(sql_fleet.credit_and_forgive, {"cname": client, "now": now})
        cooled = []
        for (other,) in c.execute(sql_fleet.failed_elsewhere, {"tid": task_id, "cname": client}).all():
            if until := self.strike(c, other, now):
                cooled.append((other, until))
        return cooled

    def strike(self, c: Tx, name: str, now: float) -> float | None:
        """A strike against `name` (a failure others then transcribed, or an outvoted result); the
        end of the cool-down it starts now, if it does."""
        row = c.execute(sql_fleet.strike, {"cname": name}).first()
        if row is None or not self.rule.seconds or row.strikes < self.rule.strikes:
            return None
        until = now + self.rule.length(row.cooldowns)
        c.execute(sql_fleet.cool_down, {"cname": name, "until": until})
        return until

    def log_cooled(self, cooled: list[tuple[str, float]]) -> None:
        for name, until in cooled:
            self.events.emit(Event.COOLDOWN, client=name, until=round(until, 3))

    # --- the operator ------------------------------------------------------------------------

    def clear(self, name: str) -> bool:
        """End a host's cool-down and forget its strikes. False: no such host."""
        with self.db.writing() as c:
            found = c.execute(sql_fleet.clear_cooldown, {"cname": name}).first() is not None
        if found:
            self.events.emit(Event.COOLDOWN_CLEARED, client=name)
        return found

    def hosts(self) -> list[HostView]:
        with self.db.reading() as c:
            rows = c.execute(sql_fleet.host_rows).all()
            learned = learned_speeds(c)
            replicas = {r[0]: (int(r[1]), int(r[2] or 0)) for r in c.execute(sql_fleet.replicas_by_client).all()}
        now = self.clock()
        out = []
        for r in rows:
            caps = capabilities(r.capabilities)
            speed, samples = learned.get(speed_key(r.name, caps), (None, 0))
            issued, won = replicas.get(r.name, (0, 0))
            out.append(
                HostView(
                    name=r.name,
                    model=str(caps.get("model") or ""),
                    backend=str(caps.get("backend") or ""),
                    speed=round(speed, 3) if speed else None,
                    bench_rtf=caps.get("rtf"),
                    samples=samples,
                    last_seen=r.last_seen,
                    tasks_done=r.tasks_done,
                    tasks_failed=r.tasks_failed,
                    strikes=r.strikes,
                    cooldown_until=r.cooldown_until if r.cooldown_until and r.cooldown_until > now else None,
                    replicas=issued,
                    replicas_won=won,
                    valid_streak=r.valid_streak,
                    trusted=self.trusted(r.valid_streak),
                    invalid_results=r.invalid_results,
                )
            )
        return out
