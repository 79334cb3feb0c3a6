#!/usr/bin/env python3
"""Load test: C simulated clients doing lease -> result cycles against a real server for T seconds.

Starts `stt-server serve` on 127.0.0.1 (free port) over a temp AUDIO_DIR of small files, then
checks that no task was completed twice or lost, and prints cycles/s and lease latency.

    python scripts/loadtest.py --clients 64 --seconds 20 --tasks 5000 [--workers 2] [--sync NORMAL]
    python scripts/loadtest.py --ceiling    # the same generator on a trivial app (scripts/ceiling_app.py)
                                            # and on the server, in turns of a few seconds; the ratio
    python scripts/loadtest.py --ceiling --hosts 10,1000,10000
        # the fleet the claims must consider: N distinct hosts with learned speeds, a quarter of them
        # holding a lease, every third English-only, a third of the files French, every length known;
        # one server per N, server CPU per cycle each and its ratio to the smallest fleet's
    python scripts/loadtest.py --ceiling --repeat 3 ...
        # three rounds, each with its own servers and ceiling: the medians and their ranges

The machine is shared and noisy: compare figures from one run, never across runs; start on a quiet disk (main()).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sqlalchemy import Engine, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import (
    cpu_seconds,
    free_port,
    generate,
    print_figures,
    reset_database,
    small_library,
    start_server,
    wait_for_housekeeping,
    wait_ready,
)

SLICE = 5.0  # --ceiling: seconds of load on one app before the other's turn
Target = tuple[list[str], list[subprocess.Popen]]  # the URLs the load goes to, the processes whose CPU counts
Ceiling = tuple[str, subprocess.Popen]  # the trivial app's URL and process


@contextmanager
def ceiling_app(args) -> Iterator[Ceiling]:
    """scripts/ceiling_app.py under the same uvicorn, on a free port, for as long as the block runs."""
    port = free_port()
    err = Path(tempfile.mkdtemp(prefix="stt-ceiling-")) / "err"
    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "uvicorn", "scripts.ceiling_app:app", "--no-access-log"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)]
    app = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=open(err, "wb"))
    try:
        if not wait_ready(f"http://127.0.0.1:{port}", app, err):
            raise SystemExit(1)
        yield f"http://127.0.0.1:{port}", app
    finally:
        app.terminate()
        app.wait(15)
        shutil.rmtree(err.parent, ignore_errors=True)


@dataclass
class Load:
    """What one target got over its slices: rows (as generate() returns them), seconds, its CPU."""

    rows: list = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0

    def add(self, target: Target, args) -> None:
        targets, procs = target
        cpu0 = sum(cpu_seconds(p) for p in procs)
        rows, elapsed = generate(targets, args)
        self.cpu += sum(cpu_seconds(p) for p in procs) - cpu0
        self.rows += rows
        self.seconds += elapsed

    @property
    def rate(self) -> float:
        return len(self.rows) / self.seconds

    @property
    def cpu_per_cycle(self) -> float:
        return self.cpu / max(len(self.rows), 1)


def alternate(args, server: Target, ceiling: Optional[Ceiling]) -> tuple[Load, Optional[Load]]:
    """The load on the server; with a ceiling, on both in turns of SLICE seconds (which goes first
    alternating), so both see the same machine: a shared machine's load drifts within a run."""
    if ceiling is None:
        mine = Load()
        mine.add(server, args)
        return mine, None
    turns = max(1, round(args.seconds / SLICE))
    sliced = argparse.Namespace(**{**vars(args), "seconds": args.seconds / turns})
    mine, theirs = Load(), Load()
    ceiling_target: Target = ([ceiling[0]], [ceiling[1]])
    for turn in range(turns):
        pairs = [(mine, server), (theirs, ceiling_target)]
        for load, target in pairs if turn % 2 == 0 else reversed(pairs):
            load.add(target, sliced)
    print(
        f"ceiling (trivial app, same requests, {turns} turns): {len(theirs.rows)} cycles  ->  "
        f"{theirs.rate:.0f} cycles/s, server CPU {theirs.cpu_per_cycle * 1000:.2f} ms per cycle"
    )
    return mine, theirs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--sync", default="FULL", help="SQLITE_SYNCHRONOUS")
    ap.add_argument("--protocol", choices=["v1", "legacy"], default="v1")
    ap.add_argument("--database-url", help="PostgreSQL (its public schema is reset for each run!); default SQLite")
    ap.add_argument("--servers", type=int, default=1, help="servers on one database (PostgreSQL)")
    ap.add_argument("--hosts", help="comma-separated fleet sizes to seed, one server each (e.g. 10,1000,10000)")
    ap.add_argument("--url", help="drive this already running server instead (no checks then)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds (ceiling, then each fleet); prints medians")
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="first measure a trivial app parsing the same requests, then print server / ceiling",
    )
    args = ap.parse_args()
    if args.ceiling and args.protocol != "v1":
        ap.error("--ceiling measures the v1 cycle only")

    if args.url:
        rows, elapsed = generate(args.url, args)
        print_figures(rows, elapsed, args)
        return 0
    fleets = [int(n) for n in args.hosts.split(",")] if args.hosts else [0]
    ratios: dict[int, list[float]] = {n: [] for n in fleets}
    per_cycle: dict[int, list[float]] = {n: [] for n in fleets}
    # Files go at the end, and a run should start minutes after another's: journal-less ext4 skips inodes
    # freed lately when creating a file (perf: up to a fifth of the server's CPU). A/B: TMPDIR=/dev/shm.
    ok, done = True, list[Path]()
    try:
        for round_ in range(args.repeat):  # the ceiling beside each round: the machine's load drifts
            if args.repeat > 1:
                print(f"=== round {round_ + 1} of {args.repeat}")
            with ceiling_app(args) if args.ceiling else nullcontext() as ceiling:
                for hosts in fleets:
                    mine, theirs, good = run_server(args, hosts, ceiling, done)
                    per_cycle[hosts].append(mine.cpu_per_cycle)
                    ok &= good
                    if theirs is not None:
                        ratios[hosts].append(mine.rate / theirs.rate)
                        print(f"ratio server / ceiling: {mine.rate / theirs.rate:.2f}")
    finally:
        for root in done:
            shutil.rmtree(root, ignore_errors=True)
    print_summary(fleets, ratios, per_cycle)
    return 0 if ok else 1


def print_summary(fleets: list[int], ratios: dict[int, list[float]], per_cycle: dict[int, list[float]]) -> None:
    """Each figure's median over the rounds, and its range when there were several."""

    def figure(values: list[float]) -> str:
        spread = f" ({min(values):.2f}-{max(values):.2f}, {len(values)} rounds)" if len(values) > 1 else ""
        return f"{statistics.median(values):.2f}{spread}"

    for hosts in fleets:
        if ratios[hosts] and (len(fleets) > 1 or len(ratios[hosts]) > 1):
            print(f"ratio server / ceiling{f', {hosts} hosts' if hosts else ''}: {figure(ratios[hosts])}")
    base = fleets[0]
    for n in fleets[1:]:  # each round's pair: the same load on the machine
        pairs = [mine / theirs for mine, theirs in zip(per_cycle[n], per_cycle[base], strict=True)]
        print(f"server CPU per cycle, {n} hosts / {base} hosts: {figure(pairs)}")


def seed_fleet(db: Engine, hosts: int, rng: random.Random) -> int:
    """`hosts` hosts seen now with learned speeds, a quarter holding a lease; every file's length
    known (1-60 min), a third of them French. Returns how many tasks the fleet holds."""
    now = time.time()
    with db.begin() as c:
        ids = [r[0] for r in c.execute(text("select id from task order by path desc"))]
        c.execute(
            text("update task set duration_ms = :d, language = :lang where id = :id"),
            [
                {"d": rng.randint(60, 3600) * 1000, "lang": "fr" if i % 3 == 0 else "en", "id": t}
                for i, t in enumerate(ids)
            ],
        )
        caps = [
            json.dumps({"backend": "cpu", "model": "ggml-base.bin", "rtf": 5, "english_only": i % 3 == 0})
            for i in range(hosts)
        ]
        c.execute(
            text(
                "insert into client (name, capabilities, first_seen, last_seen, tasks_done, tasks_failed, strikes,"
                " cooldowns) values (:n, :caps, :now, :now, 0, 0, 0, 0)"
            ),
            [{"n": f"host-{i:05}", "caps": caps[i], "now": now} for i in range(hosts)],
        )
        c.execute(
            text(
                "insert into speed (client, model, backend, audio_seconds, processing_seconds, samples, updated_at)"
                " values (:n, 'ggml-base.bin', 'cpu', :a, 100, 5, :now)"
            ),
            [{"n": f"host-{i:05}", "a": 100 * rng.uniform(1, 30), "now": now} for i in range(hosts)],
        )
        held = ids[: hosts // 4]
        c.execute(text("update task set state = 'leased', attempts = 1 where id = :id"), [{"id": t} for t in held])
        c.execute(
            text(
                "insert into attempt (task_id, client, protocol, token, state, granted_at, deadline, replica, eta)"
                " values (:t, :n, 'v1', :tok, 'active', :now, :end, false, :now + 600)"
            ),
            [
                {
                    "t": t,
                    "n": f"host-{i:05}",
                    "tok": f"seed-{i:05}-token",
                    "now": now,
                    "end": now + 3600,
                }
                for i, t in enumerate(held)
            ],
        )
    return len(held)


def run_server(args, hosts: int, ceiling: Optional[Ceiling], done: list[Path]) -> tuple[Load, Optional[Load], bool]:
    """args.servers servers over one fresh library and database (and `hosts` seeded hosts), in turns with
    the ceiling app if any: what each got, whether the checks passed (if so, its files go on `done`)."""
    tasks = max(args.tasks, hosts // 4 + 12000) if hosts else args.tasks
    root = Path(tempfile.mkdtemp(prefix="stt-load-"))
    small_library(root / "audio", tasks)
    url = args.database_url or f"sqlite:///{root / 'data' / 'batch-stt.db'}"
    if args.database_url:
        reset_database(url)
    servers: list[tuple[subprocess.Popen, str]] = []
    db = None
    try:
        for _ in range(args.servers):  # one after the other: the first one migrates the database
            # No ffprobe on the PATH: the files are not audio, and this measures the lease path only.
            server, base = start_server(root, args, PATH=str(root), DATABASE_URL=url)
            servers.append((server, base))
            if not wait_ready(base, server, root / "server.err"):
                raise SystemExit(1)
        db = create_engine(url)
        wait_for_housekeeping(db)
        held = seed_fleet(db, hosts, random.Random(hosts)) if hosts else 0
        mine, theirs = alternate(args, ([base for _, base in servers], [p for p, _ in servers]), ceiling)
    finally:
        for p, _ in servers:
            p.terminate()
            p.wait(15)

    where = f"{args.servers} servers on PostgreSQL" if args.database_url else "SQLite"
    print(f"--- hosts={hosts} (a quarter holding a lease), {where}" if hosts else f"--- {where}")
    print_figures(mine.rows, mine.seconds, args, tasks)
    ok = books_balance(db, mine.rows, root, tasks, args.clients + held)
    print(f"server CPU {mine.cpu_per_cycle * 1000:.2f} ms per cycle")
    if ok:
        done.append(root)
    else:
        print(f"its files: {root}")
    return mine, theirs, ok


def books_balance(db: Engine, rows: list, root: Path, tasks: int, max_leased: int) -> bool:
    """Nothing completed twice, nothing lost: every accepted result is one done task and one result set."""
    accepted = [tid for tid, _, outcome, _ in rows if outcome == "accepted"]
    problems = [o for _, _, o, _ in rows if o != "accepted"]
    with db.connect() as c:
        states = {state: n for state, n in c.execute(text("select state, count(*) from task group by state"))}
        twice = c.execute(
            text(
                "select count(*) from (select task_id from attempt where state='completed' "
                "group by task_id having count(*) > 1) t"
            )
        ).scalar()
        done_ids = {r[0] for r in c.execute(text("select id from task where state='done'"))}
        total = c.execute(text("select count(*) from task")).scalar()
    db.dispose()
    results = sum(1 for _ in (root / "data" / "results").rglob("*.meta.json"))
    leased = states.get("leased", 0)

    print(f"task states: {states}; result sets on disk: {results}")
    ok = (
        len(accepted) == len(set(accepted)) == len(done_ids) == results
        and twice == 0
        and not problems
        and set(accepted) == done_ids
        and total == tasks
        and leased <= max_leased
    )
    print(
        "CHECK",
        "OK: no task completed twice, none lost"
        if ok
        else f"FAILED: accepted={len(accepted)} unique={len(set(accepted))} done={len(done_ids)} twice={twice} "
        f"problems={problems[:5]} leased={leased}",
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
