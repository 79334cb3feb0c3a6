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
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Optional

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from loadgen import reset_database  # noqa: E402
from sim_library import File, cut, library, noise_mp3  # noqa: E402

from server.ledger import model_tier  # noqa: E402
from tests.helpers import ServerProcess  # noqa: E402

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nsimulated\n"
JOB_SECONDS = 1800.0  # the uploaded job of --mixed, asking for a medium model


@dataclass
class Host:
    name: str
    speed: float  # real, x real time
    url: str
    timescale: float
    model: str = "ggml-base.bin"
    english_only: bool = False
    bench: float = 1.0  # what its benchmark says, as a share of its real speed
    noise: float = 0.0  # each task takes x(1 +- noise) of its speed
    busy: float = 0.0
    tasks: int = 0
    lost: int = 0
    rng: random.Random = field(default_factory=random.Random)
    session: requests.Session = field(default_factory=requests.Session)

    def takes(self, f: File) -> bool:
        return (not self.english_only or f.language in ("en", "auto")) and model_tier(self.model) >= f.min_tier

    def lease(self, session: requests.Session, wait: bool = True) -> Optional[dict]:
        """A lease with its audio downloaded; None after a 204 (waited out unless `wait` is off)."""
        caps = {
            "backend": "sim",
            "model": self.model,
            "english_only": self.english_only,
            "rtf": self.speed * self.timescale * self.bench,
        }
        r = session.post(f"{self.url}/api/v1/leases", json={"client": self.name, "capabilities": caps})
        if r.status_code == 204:
            if wait:  # Retry-After, in simulated time
                time.sleep(max(0.2, float(r.headers.get("Retry-After", 0)) / self.timescale))
            return None
        r.raise_for_status()
        lease = r.json()
        with session.get(self.url + lease["audio_url"], stream=True) as audio:
            for _ in audio.iter_content(1 << 16):
                pass
        return lease

    def work(self, lease: dict, held: list[Optional[dict]]) -> None:
        """Sleep the simulated transcription, heartbeating every lease held; upload unless lost."""
        if lease["start_seconds"] is not None:
            length = lease["end_seconds"] - lease["start_seconds"]
        else:
            length = lease["file_duration_seconds"] or 1.0
        wall = length / self.speed / self.timescale * self.rng.uniform(1 - self.noise, 1 + self.noise)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < wall:
            time.sleep(min(0.5, wall - elapsed))
            for other in held:
                if other is None:
                    continue
                progress = min(100.0, 100 * (time.monotonic() - started) / wall) if other is lease else None
                r = self.session.post(
                    f"{self.url}/api/v1/leases/{other['token']}/heartbeat", json={"progress": progress}
                )
                if r.status_code == 409 and other is lease:
                    self.lost += 1
                    self.busy += time.monotonic() - started
                    return
        self.busy += wall
        self.tasks += 1
        meta = f'{{"model": "{self.model}", "backend": "sim", "audio_seconds": {length}, "processing_seconds": 0}}'
        files = {"vtt": ("v.vtt", VTT.encode()), "txt": ("t.txt", b"simulated\n")}
        self.session.post(f"{self.url}/api/v1/leases/{lease['token']}/result", data={"meta": meta}, files=files)

    def run(self, finished: threading.Event) -> None:
        try:
            self._loop(finished)
        except requests.RequestException:
            if not finished.is_set():  # the servers stop once the batch is done; before that, it is a bug
                raise

    def _loop(self, finished: threading.Event) -> None:
        nxt: Optional[dict] = None
        while not finished.is_set():
            lease = nxt or self.lease(self.session)
            if lease is None:
                continue
            held: list[Optional[dict]] = [lease]  # the prefetched lease joins it, and is heartbeated too
            prefetch = threading.Thread(target=self._prefetch, args=(held,))
            prefetch.start()
            self.work(lease, held)
            prefetch.join()
            nxt = held[1]

    def _prefetch(self, held: list[Optional[dict]]) -> None:
        with requests.Session() as session:
            held.append(self.lease(session, wait=False))


def fleet(speeds: list[float], args: argparse.Namespace, urls: list[str], seed: int) -> list[Host]:
    rng = random.Random(seed)
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


def ready(url: str, split_seconds: int, count: int) -> bool:
    """All `count` files found and probed, and every long one cut into parts."""
    tasks = requests.get(f"{url}/api/v1/tasks", params={"limit": 10000}).json()
    files = [t for t in tasks if t["parent_id"] is None]
    return len(files) == count and all(
        t["duration_ms"] is not None and (t["state"] == "split" or t["duration_ms"] <= split_seconds * 1000)
        for t in files
    )


def run_fleet(root: Path, files: list[File], speeds: list[float], args: argparse.Namespace, scheduler: str) -> dict:
    env = {"SCHEDULER": scheduler, "LEASE_SECONDS": 30, "SPLIT_SECONDS": args.split_seconds}
    if args.database_url:
        reset_database(args.database_url)
        env["DATABASE_URL"] = args.database_url
    servers = [ServerProcess(root, SCAN_INTERVAL=1, **env).start(timeout=120) for _ in range(args.servers)]
    try:
        hosts = fleet(speeds, args, [s.url for s in servers], args.seed)
        for h in hosts:  # a running fleet, waiting for work: the scheduler knows it before the first task
            assert h.lease(h.session) is None
        jobs = [f for f in files if f.min_tier]
        for f in files:
            if not f.min_tier:
                (root / "audio" / f.path).parent.mkdir(parents=True, exist_ok=True)
                (root / "library" / f.path).rename(root / "audio" / f.path)
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
        while True:
            counts = requests.get(f"{servers[0].url}/api/v1/stats").json()["counts"]
            if counts["queued"] + counts["leased"] + counts["split"] == 0:
                break
            time.sleep(0.1)
        wall = time.monotonic() - started
        finished.set()
        stats = requests.get(f"{servers[0].url}/api/v1/stats").json()
    finally:
        for s in servers:
            s.stop()
    return {"wall": wall, "hosts": hosts, "stats": stats}


def report(title: str, result: dict, bound: float, timescale: float) -> float:
    makespan = result["wall"] * timescale
    stats = result["stats"]
    print(f"{title}: makespan {makespan:,.0f} s, lower bound {bound:,.0f} s, ratio {makespan / bound:.3f}")
    shares = "  ".join(
        f"{h.speed:g}x{'/en' if h.english_only else ''} {h.busy / result['wall']:.0%}" for h in result["hosts"]
    )
    print(f"  busy share: {shares}")
    print(f"  replicas issued {stats['replicas']}, won {stats['replicas_won']}; failed {stats['counts']['failed']}")
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
    ratios = {}
    base = noise_mp3(cache)
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


if __name__ == "__main__":
    main()
