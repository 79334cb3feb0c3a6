#!/usr/bin/env python3
"""A heterogeneous fleet against the real server: the speed-aware scheduler and FIFO, same run.

The server is real (SQLite, or --database-url for PostgreSQL; --servers 2 puts two servers on one
database); so is the library: MP3s of realistic lengths (many short, a few of 1-2 hours) under
shuffled names, which the server probes and cuts into parts as usual. The clients are simulated
over HTTP: each leases with its capabilities, downloads the audio it is given, "transcribes" by
sleeping length / speed / timescale while heartbeating its progress, and uploads a result; a 204
with Retry-After is waited out as the real client does. Like the real daemon, each prefetches its
next lease while it works.

    --mixed   a third of the library in French and German, the three fastest hosts on an English-only
              model (small.en), one slow host with a medium model, and one uploaded job that asks for
              medium (only that host may take it)
    --noisy   each host's benchmark is off by x0.5-1.5, and each task takes x0.8-1.2 of its speed
    --liars K K hosts (the fastest among them) upload plausible garbage: other words, as many (0: none,
              to see what checking an honest fleet costs). Then
              the runs compare VALIDATION=adaptive with VALIDATION=off (speed-aware both), each over
              the library twice in a row (the second time the honest hosts have earned trust), and
              print garbage results left in RESULTS_DIR, the audio transcribed again to check results
              as a share of each batch, and the makespans

Printed per scheduler: makespan, the lower bound, their ratio, each host's busy share, replicas
issued and won. The lower bound is the largest, over every set of task groups (language, least
model tier), of their work divided by the speed of the hosts that may take any of them; it includes
all work over all speeds and each language alone. Then (unless --skip-single) one 2-hour file on
8 equal hosts, against the same file on one of them.

    python scripts/simulate_fleet.py [--mixed] [--noisy] [--hosts 2,3,5,8,12,16,24,30] [--files 25]
                                     [--timescale 10] [--database-url postgresql://...] [--servers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from loadgen import reset_database  # noqa: E402
from sim_host import LIES, Host  # noqa: E402
from sim_library import File, cut, library, noise_mp3  # noqa: E402

from server.ledger import own_seconds  # noqa: E402
from tests.helpers import ServerProcess  # noqa: E402

JOB_SECONDS = 1800.0  # the uploaded job of --mixed, asking for a medium model


def fleet(speeds: list[float], args: argparse.Namespace, urls: list[str], seed: int) -> list[Host]:
    rng = random.Random(seed)
    ranked = sorted(range(len(speeds)), key=lambda i: -speeds[i])
    liars = set(ranked[:1] + rng.sample(ranked[1:], max(0, args.liars - 1))) if args.liars else set()
    hosts = []
    fastest = sorted(speeds)[-3:] if args.mixed else []
    medium = sorted(speeds)[1] if args.mixed else None
    for i, s in enumerate(speeds):
        model = "ggml-small.en.bin" if s in fastest else ("ggml-medium.bin" if s == medium else "ggml-base.bin")
        hosts.append(
            Host(
                f"h{i:02}-{s:g}x",
                s,
                urls[i % len(urls)],
                args.timescale,
                model=model,
                english_only=s in fastest,
                bench=rng.uniform(0.5, 1.5) if args.noisy else 1.0,
                noise=0.2 if args.noisy else 0.0,
                rng=random.Random(seed * 100 + i),
                liar=i in liars,
            )
        )
    return hosts


def lower_bound(files: list[File], hosts: list[Host]) -> float:
    """max over every set of task groups of their work / the speed of the hosts that may take any."""
    groups = sorted({(f.language, f.min_tier) for f in files})
    bound = 0.0
    for n in range(1, len(groups) + 1):
        for chosen in combinations(groups, n):
            mine = [f for f in files if (f.language, f.min_tier) in chosen]
            speed = sum(h.speed for h in hosts if any(h.takes(f) for f in mine))
            bound = max(bound, sum(f.seconds for f in mine) / speed)
    return bound


def ready(url: str, split_seconds: int, count: int, prefix: str = "") -> bool:
    """All `count` files (under `prefix`) found and probed, and every long one cut into parts."""
    tasks = requests.get(f"{url}/api/v1/tasks", params={"limit": 10000}).json()
    files = [t for t in tasks if t["parent_id"] is None and t["path"].startswith(prefix)]
    return len(files) == count and all(
        t["duration_ms"] is not None and (t["state"] in ("split", "done") or t["duration_ms"] <= split_seconds * 1000)
        for t in files
    )


def run_fleet(
    root: Path,
    files: list[File],
    speeds: list[float],
    args: argparse.Namespace,
    scheduler: str,
    validation: str = "off",
) -> dict:
    """The library (and, with --liars, the same again under second/ once it is done) on a fresh server."""
    env = {"SCHEDULER": scheduler, "LEASE_SECONDS": 30, "SPLIT_SECONDS": args.split_seconds, "VALIDATION": validation}
    if args.database_url:
        reset_database(args.database_url)
        env["DATABASE_URL"] = args.database_url
    servers = [ServerProcess(root, SCAN_INTERVAL=1, **env).start(timeout=120) for _ in range(args.servers)]
    try:
        hosts = fleet(speeds, args, [s.url for s in servers], args.seed)
        for h in hosts:  # a running fleet, waiting for work: the scheduler knows it before the first task
            assert h.lease(h.session) is None
        jobs = [f for f in files if f.min_tier]
        _move(root, [f.path for f in files if not f.min_tier])
        for f in jobs:
            with open(root / "library" / f.path, "rb") as body:
                r = requests.post(
                    f"{servers[0].url}/api/v1/jobs",
                    files={"file": (Path(f.path).name, body, "audio/mpeg")},
                    data={"model": "medium", "language": f.language},
                )
                r.raise_for_status()
        while not ready(servers[0].url, args.split_seconds, len(files)):
            time.sleep(0.2)
        finished = threading.Event()
        threads = [threading.Thread(target=h.run, args=(finished,), daemon=True) for h in hosts]
        started = time.monotonic()
        for t in threads:
            t.start()
        stats = _until_done(servers[0].url)
        wall = time.monotonic() - started
        busy = [h.busy for h in hosts]  # the first batch's (the makespan's)
        batches = [stats["validation_audio_hours"] * 3600]
        redone = [_redone(root, servers[0].url)]
        if args.liars is not None:  # the same library again: the honest hosts have a record by now
            _move(root, [f"second/{f.path}" for f in files if not f.min_tier])
            while not ready(servers[0].url, args.split_seconds, len(files) - len(jobs), "second/"):
                time.sleep(0.2)
            stats = _until_done(servers[0].url)
            batches.append(stats["validation_audio_hours"] * 3600 - batches[0])
            redone.append(_redone(root, servers[0].url) - redone[0])
        finished.set()
    finally:
        for s in servers:
            s.stop()
    garbage = sum(bool(set(LIES) & set(p.read_text().split())) for p in (root / "data" / "results").rglob("*.txt"))
    return {
        **{"wall": wall, "hosts": hosts, "busy": busy, "stats": stats},
        **{"checked": batches, "redone": redone, "garbage": garbage},
    }


def _redone(root: Path, url: str) -> float:
    """Audio seconds of the tasks sent back to be transcribed whole (two spot checks outvoted a result)."""
    tasks = requests.get(f"{url}/api/v1/tasks", params={"limit": 10000}).json()
    seconds = {t["id"]: own_seconds(t["start_ms"], t["end_ms"], t["duration_ms"]) for t in tasks}
    lines = (root / "data" / "events.log").read_text().splitlines()
    events = [json.loads(line) for line in lines if '"requeued"' in line]
    return sum(seconds.get(e["task"], 0.0) for e in events if "outvoted" in e.get("reason", ""))


def _move(root: Path, paths: list[str]) -> None:
    for path in paths:
        (root / "audio" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "library" / path).rename(root / "audio" / path)


def _until_done(url: str) -> dict:
    while True:
        stats = requests.get(f"{url}/api/v1/stats").json()
        counts = stats["counts"]
        if counts["queued"] + counts["leased"] + counts["split"] + counts["checking"] == 0:
            return stats
        time.sleep(0.1)


def report(title: str, result: dict, bound: float, timescale: float) -> float:
    makespan = result["wall"] * timescale
    stats = result["stats"]
    print(f"{title}: makespan {makespan:,.0f} s, lower bound {bound:,.0f} s, ratio {makespan / bound:.3f}")
    shares = "  ".join(
        f"{h.speed:g}x{'/en' if h.english_only else ''} {busy / result['wall']:.0%}"
        for h, busy in zip(result["hosts"], result["busy"], strict=True)
    )
    print(f"  busy share: {shares}")
    print(f"  replicas issued {stats['replicas']}, won {stats['replicas_won']}; failed {stats['counts']['failed']}")
    waits: Counter[str] = sum((h.waits for h in result["hosts"]), Counter())
    print("  told to wait (204), by reason: " + ", ".join(f"{why} {n}" for why, n in waits.most_common()))
    return makespan / bound


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="2,3,5,8,12,16,24,30", help="speeds (x real time)")
    ap.add_argument("--files", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timescale", type=float, default=10.0, help="simulated seconds per wall second")
    ap.add_argument("--split-seconds", type=int, default=600)
    ap.add_argument("--mixed", action="store_true", help="other languages, English-only fast hosts, a medium job")
    ap.add_argument("--noisy", action="store_true", help="benchmarks off by x0.5-1.5, tasks x0.8-1.2")
    ap.add_argument("--database-url", help="PostgreSQL (reset for each run!); default SQLite")
    ap.add_argument("--servers", type=int, default=1, help="servers on one database")
    ap.add_argument("--skip-single", action="store_true", help="skip the single 2-hour file")
    ap.add_argument("--liars", type=int, help="hosts that upload garbage (the fastest among them); 0: none")
    args = ap.parse_args()
    speeds = [float(s) for s in args.hosts.split(",")]
    cache = Path(tempfile.gettempdir()) / "batch-stt-sim"
    files = library(args.files, args.seed, args.mixed)
    if args.mixed:
        files.append(File("jobs/board-meeting.mp3", JOB_SECONDS, "en", min_tier=4))
    bound = lower_bound(files, fleet(speeds, args, [""], args.seed))
    total = sum(f.seconds for f in files)
    mode = " ".join(m for m in ("mixed" if args.mixed else "", "noisy" if args.noisy else "") if m) or "default"
    print(f"library: {len(files)} files, {total / 3600:.1f} h ({mode}); hosts {args.hosts}; servers {args.servers}")
    base = noise_mp3(cache)
    if args.liars is not None:
        return liars(files, speeds, args, bound, base, total)
    ratios = {}
    for scheduler in ("speed", "fifo"):
        with tempfile.TemporaryDirectory(prefix="stt-sim-") as tmp:
            for f in files:
                cut(base, Path(tmp) / "library" / f.path, f.seconds)
            result = run_fleet(Path(tmp), files, speeds, args, scheduler)
            ratios[scheduler] = report(f"SCHEDULER={scheduler}", result, bound, args.timescale)
    print(f"fifo / speed: {ratios['fifo'] / ratios['speed']:.2f}")
    if args.skip_single:
        return
    walls = {}
    single = argparse.Namespace(**{**vars(args), "mixed": False, "noisy": False})
    for n in (1, 8):
        with tempfile.TemporaryDirectory(prefix="stt-sim-") as tmp:
            cut(base, Path(tmp) / "library" / "one.mp3", 7200.0)
            walls[n] = run_fleet(Path(tmp), [File("one.mp3", 7200.0)], [20.0] * n, single, "speed")["wall"]
    share = walls[8] / walls[1]
    print(f"one 2-hour file: 8 hosts {walls[8]:.1f} s wall, 1 host {walls[1]:.1f} s: {share:.3f} of one host")


def liars(files: list[File], speeds: list[float], args: argparse.Namespace, bound: float, base: Path, total: float):
    """VALIDATION=adaptive against off, same fleet (with its liars), the library twice each."""
    makespans = {}
    for validation in ("adaptive", "off"):
        with tempfile.TemporaryDirectory(prefix="stt-sim-") as tmp:
            for f in files:
                cut(base, Path(tmp) / "library" / f.path, f.seconds)
                cut(base, Path(tmp) / "library" / "second" / f.path, f.seconds)
            result = run_fleet(Path(tmp), files, speeds, args, "speed", validation)
        makespans[validation] = report(f"VALIDATION={validation}", result, bound, args.timescale)
        first, second = (s / total for s in result["checked"])
        again = [w / total for w in result["redone"]]
        trust = "  ".join(
            f"{h['name']}{' (liar)' if h['name'] in {x.name for x in result['hosts'] if x.liar} else ''}: "
            f"{'trusted' if h['trusted'] else 'checked'}, {h['invalid_results']} invalid"
            for h in result["stats"]["hosts"]
        )
        print(f"  garbage results in RESULTS_DIR: {result['garbage']}; audio checked again: {first:.3f} of the first"
              f" batch, {second:.3f} of the second")  # fmt: skip
        print(f"  transcribed whole again after two spot checks outvoted a result: {again[0]:.3f} of the first"
              f" batch, {again[1]:.3f} of the second")  # fmt: skip
        print(f"  hosts: {trust}")
    print(f"makespan, validation on / off (first batch): {makespans['adaptive'] / makespans['off']:.3f}")


if __name__ == "__main__":
    main()
