#!/usr/bin/env python3
"""The ledger alone, in-process: CPU per claim + completion (no HTTP, no result files), with the
speed-aware scheduler against path-order claims (SCHEDULER=fifo) in the same run, and the
statements a cycle runs. Where scripts/loadtest.py --ceiling says how far the whole server is from
a trivial app, this says how much of a cycle is the ledger's own.

    python scripts/bench_ledger.py [--tasks 6000] [--cycles 2000] [--clients 64]

The machine is shared and noisy: compare figures from one run, never across runs.
"""

from __future__ import annotations

import argparse
import collections
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from server.disk.scanner import task_id_for  # noqa: E402
from server.ledger import Assigner, EventLog, FoundFile, Grant, Ledger, SchedulerKind, TaskView  # noqa: E402
from server.ledger.sql import run  # noqa: E402

CAPS = {"backend": "load", "model": "ggml-base.bin", "rtf": 1000}


class Nowhere:
    """Results that go nowhere: the files' cost is scripts/loadtest.py's to measure."""

    def keep(self, task: TaskView) -> None: ...

    def hold(self, task: TaskView, attempt_id: int) -> None: ...

    def agrees(self, task: TaskView, attempt_id: int) -> bool:
        return True

    def promote(self, task: TaskView, attempt_id: int) -> None: ...

    def reopen(self, task: TaskView, attempt_id: int) -> bool:
        return False


def ledger(kind: SchedulerKind, tasks: int, folder: Path) -> Ledger:
    url = f"sqlite:///{folder / kind.value}.sqlite"
    made = Ledger.open(
        url,
        lease_seconds=600,
        legacy_lease_seconds=6000,
        max_attempts=3,
        events=EventLog(stream=io.StringIO()),
        sqlite_synchronous="OFF",  # the CPU, not the disk
        assigner=Assigner(kind),
    )
    names = [f"d{i // 500:03}/f{i:06}.mp3" for i in range(tasks)]
    found = [FoundFile(task_id_for(n), n, n[:-4], "auto", 100, 1.0, False) for n in names]
    made.catalogue.sync_files(found, complete_scan=False)
    with made.db.engine.begin() as c:  # every length known, every file checksummed: all may go out
        c.execute(text("update task set duration_ms = 600000, sha256 = 'x'"))
    return made


def cycles(ledger: Ledger, n: int, clients: int) -> float:
    """CPU seconds per claim + completion, `clients` hosts taking turns."""
    nowhere = Nowhere()
    start = time.process_time()
    for i in range(n):
        grant = ledger.leases.claim(f"load-{i % clients}", capabilities=CAPS)
        assert isinstance(grant, Grant), grant  # the load's hosts are the fleet's fastest: never told to wait
        ledger.leases.complete(grant.token, nowhere)
    return (time.process_time() - start) / n


def statements(ledger: Ledger, n: int, clients: int) -> collections.Counter:
    counted: collections.Counter = collections.Counter()
    execute = run.Tx.execute

    def counting(self: run.Tx, statement: Any, params: Any = None) -> run.Result:
        counted[" ".join(str(statement).split())[:70]] += 1
        return execute(self, statement, params)

    run.Tx.execute = counting  # type: ignore[method-assign]
    try:
        cycles(ledger, n, clients)
    finally:
        run.Tx.execute = execute  # type: ignore[method-assign]
    return counted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=6000)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=64)
    args = ap.parse_args()
    if args.cycles + 300 > args.tasks:
        ap.error("--tasks must exceed --cycles by 300 (each cycle finishes a task)")
    with tempfile.TemporaryDirectory(prefix="stt-ledger-") as folder:
        figures = measure(args, Path(folder))
    print(f"speed / fifo: {figures[SchedulerKind.SPEED] / figures[SchedulerKind.FIFO]:.2f}")
    return 0


def measure(args: argparse.Namespace, folder: Path) -> dict[SchedulerKind, float]:
    figures = {}
    for kind in (SchedulerKind.FIFO, SchedulerKind.SPEED):
        made = ledger(kind, args.tasks, folder)
        cycles(made, 200, args.clients)  # warm: compiled statements, the fleet's snapshot
        figures[kind] = cycles(made, args.cycles, args.clients)
        print(f"{kind.value}: {figures[kind] * 1000:.3f} ms CPU per claim + completion ({args.cycles} cycles)")
        if kind == SchedulerKind.SPEED:
            counted = statements(made, 100, args.clients)
            print(f"statements per cycle: {sum(counted.values()) / 100:.1f}")
            for statement, count in counted.most_common():
                print(f"  {count / 100:5.2f}  {statement}")
        made.db.dispose()
    return figures


if __name__ == "__main__":
    sys.exit(main())
