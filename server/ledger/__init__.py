"""The task ledger: every task and lease state, and the only code that touches the database.

    ledger.leases     claim / heartbeat / complete / fail / release / expire   (leases.py)
    ledger.legacy     the same for the legacy protocol's clients              (legacy.py)
    ledger.catalogue  files on disk -> tasks; checksums; requeue              (catalogue.py)
    ledger.parts      long files cut into part tasks, and when to stitch them (parts.py)
    ledger.fleet      hosts: learned speeds, cool-downs                       (fleet.py)
    ledger.reports    task, tasks, stats                                       (reports.py)
    ledger.jobs       uploaded jobs: create, follow, cancel, delete           (jobs.py)

Which task a claim gets is the policy's choice (policy.py, pure; assign.py reads the fleet for it,
snapshot.py keeps the claims' shared view of it). Event names: events.py. Statements live in sql/, one
file per facet (sql/run.py runs them), tables in tables.py, migrations in migrations/ (migrate.py
runs them). Nothing outside the ledger imports its modules: what others need is on this face.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from .assign import Assigner, Wait, WaitReason
from .catalogue import Catalogue
from .database import Database, make_engine
from .errors import LeaseLost, LedgerError, MigrationError, NotFound
from .events import Event, EventLog
from .fleet import CooldownRule, Fleet
from .jobs import JobRequest, Jobs, JobState, JobView
from .leases import Ask, Claimed, Leases
from .legacy import LegacyLeases
from .migrate import upgrade
from .parts import Parts
from .policy import SchedulerKind
from .principals import Principals, PrincipalView
from .reports import Reports
from .states import AttemptState, Protocol, Speakers, TaskState
from .summaries import HostView, Stats
from .tiers import TIERS, model_tier
from .validation import Results, ValidationMode, ValidationRule, Validator
from .values import (
    TASK_ID,
    Completion,
    FoundFile,
    Grant,
    Made,
    PartView,
    PlannedPart,
    ScanReport,
    TaskView,
    Verdict,
    own_seconds,
    task_id_for,
)
from .volunteers import Volunteers, VolunteerView

__all__ = [
    "TASK_ID",
    "TIERS",
    "Ask",
    "Assigner",
    "AttemptState",
    "Catalogue",
    "Claimed",
    "Completion",
    "CooldownRule",
    "Event",
    "EventLog",
    "FoundFile",
    "Grant",
    "HostView",
    "JobRequest",
    "JobState",
    "JobView",
    "Jobs",
    "LeaseLost",
    "Ledger",
    "LedgerError",
    "Made",
    "MigrationError",
    "NotFound",
    "PartView",
    "Parts",
    "PlannedPart",
    "PrincipalView",
    "Principals",
    "Protocol",
    "Results",
    "ScanReport",
    "SchedulerKind",
    "Speakers",
    "Stats",
    "TaskState",
    "TaskView",
    "ValidationMode",
    "ValidationRule",
    "Verdict",
    "VolunteerView",
    "Volunteers",
    "Wait",
    "WaitReason",
    "model_tier",
    "own_seconds",
    "task_id_for",
    "upgrade_database",
]


@dataclass(frozen=True)
class Ledger:
    db: Database
    leases: Leases
    legacy: LegacyLeases
    catalogue: Catalogue
    parts: Parts
    fleet: Fleet
    reports: Reports
    jobs: Jobs
    principals: Principals
    volunteers: Volunteers

    @classmethod
    def open(
        cls,
        url: str,
        *,
        lease_seconds: int,
        legacy_lease_seconds: int,
        max_attempts: int,
        events: EventLog,
        sqlite_synchronous: str = "FULL",
        splitting: bool = False,
        assigner: Assigner = Assigner(),
        validation: ValidationRule = ValidationRule(),
        cooldown: CooldownRule = CooldownRule(),
        clock: Callable[[], float] = time.time,
        snapshot_seconds: float = 1.0,
    ) -> Ledger:
        """Connect, bring the schema to this release's (MigrationError if it cannot), and wire the parts.

        `splitting`: long files are cut into parts, so no file goes out before its length is known.
        `snapshot_seconds`: how old the claims' shared view of the fleet may get (snapshot.py).
        """
        engine = make_engine(url, sqlite_synchronous)
        upgrade(engine)
        db = Database(engine)
        fleet = Fleet(db, events, clock, cooldown, validation.trusted)
        leases = Leases(
            db,
            events,
            clock,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            fleet=fleet,
            assigner=assigner,
            validator=Validator(validation, fleet),
            probed_only=splitting,
            snapshot_seconds=snapshot_seconds,
        )
        return cls(
            db,
            leases,
            LegacyLeases(leases, legacy_lease_seconds),
            Catalogue(db, events, clock),
            Parts(db, events, clock),
            fleet,
            Reports(db, clock),
            Jobs(db, events, clock),
            Principals(db, clock),
            Volunteers(db, clock),
        )


def upgrade_database(url: str, sqlite_synchronous: str = "FULL") -> tuple[Optional[str], str]:
    """Bring the database to this release's schema (`stt-server migrate`): (before, after)."""
    return upgrade(make_engine(url, sqlite_synchronous))
