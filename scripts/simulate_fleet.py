#!/usr/bin/env python3
"""A heterogeneous fleet against the real server: the speed-aware scheduler and FIFO, same run.

The server is real (SQLite, or --database-url for PostgreSQL; --servers 2 puts two servers on one
database); so is the library: MP3s of realistic lengths (many short, a few of 1-2 hours), which
the server probes and cuts into parts as usual. The clients are simulated over HTTP: each leases
with its speed, downloads the audio it is given, "transcribes" by sleeping length / speed /
timescale while heartbeating its progress, and uploads a result. Like the real daemon, each
prefetches its next lease while it works.

Printed per scheduler: makespan, the lower bound (total audio / sum of speeds), their ratio, each
host's busy share, replicas issued and won. Then one 2-hour file on 8 equal hosts, against the same
file on one of them.

    python scripts/simulate_fleet.py [--hosts 2,3,5,8,12,16,24,30] [--files 25] [--timescale 10]
                                     [--database-url postgresql://...] [--servers 2]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import ServerProcess  # noqa: E402

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nsimulated\n"


def library_lengths(files: int, seed: int) -> list[float]:
    """Minutes: three quarters short (1-15), the rest 20-60, and 3 of 60-120."""
    rng = random.Random(seed)
    long = [rng.uniform(60, 120) for _ in range(min(3, files))]
    middle = [rng.uniform(20, 60) for _ in range(max(0, files // 4 - len(long)))]
    short = [rng.uniform(1, 15) for _ in range(files - len(long) - len(middle))]
    return [round(m * 60, 1) for m in short + middle + long]


def make_library(folder: Path, lengths: list[float], cache: Path) -> None:
    """Stream copies of one noise MP3 (8 kbit/s: 2 hours is 7 MB), so building it takes seconds."""
    base = cache / "noise-2h.mp3"
    if not base.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # fmt: off
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anoisesrc=r=8000:a=0.1:d=7260",
                        "-ac", "1", "-b:a", "8k", str(base) + ".tmp.mp3"], check=True)
        # fmt: on
        Path(str(base) + ".tmp.mp3").rename(base)
    folder.mkdir(parents=True, exist_ok=True)
    for i, seconds in enumerate(lengths):
        out = folder / f"talk-{i:03}.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", base, "-t", str(seconds), "-c", "copy", out], check=True)


@dataclass
class Host:
    name: str
    speed: float
    url: str
    timescale: float
    busy: float = 0.0
    tasks: int = 0
    lost: int = 0
    session: requests.Session = field(default_factory=requests.Session)

    def lease(self, session: requests.Session) -> Optional[dict]:
        caps = {"backend": "sim", "model": "sim", "rtf": self.speed * self.timescale}
        r = session.post(f"{self.url}/api/v1/leases", json={"client": self.name, "capabilities": caps})
        if r.status_code == 204:
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
        wall = length / self.speed / self.timescale
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
        meta = f'{{"model": "sim", "backend": "sim", "audio_seconds": {length}, "processing_seconds": {wall}}}'
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
                time.sleep(0.2)
                continue
            held: list[Optional[dict]] = [lease]  # the prefetched lease joins it, and is heartbeated too
            prefetch = threading.Thread(target=self._prefetch, args=(held,))
            prefetch.start()
            self.work(lease, held)
            prefetch.join()
            nxt = held[1]

    def _prefetch(self, held: list[Optional[dict]]) -> None:
        with requests.Session() as session:
            held.append(self.lease(session))


def reset_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def ready(url: str, split_seconds: int, count: int) -> bool:
    """All `count` files found and probed, and every long one cut into parts."""
    tasks = requests.get(f"{url}/api/v1/tasks", params={"limit": 10000}).json()
    files = [t for t in tasks if t["parent_id"] is None]
    return len(files) == count and all(
        t["duration_ms"] is not None and (t["state"] == "split" or t["duration_ms"] <= split_seconds * 1000)
        for t in files
    )


def run_fleet(root: Path, speeds: list[float], args: argparse.Namespace, scheduler: str) -> dict:
    env = {"SCHEDULER": scheduler, "LEASE_SECONDS": 30, "SPLIT_SECONDS": args.split_seconds}
    if args.database_url:
        reset_database(args.database_url)
        env["DATABASE_URL"] = args.database_url
    library = root / "library"
    servers = [ServerProcess(root, SCAN_INTERVAL=1, **env).start(timeout=120) for _ in range(args.servers)]
    try:
        hosts = [
            Host(f"h{i:02}-{s:g}x", s, servers[i % len(servers)].url, args.timescale) for i, s in enumerate(speeds)
        ]
        for h in hosts:  # a running fleet, waiting for work: the scheduler knows it before the first task
            assert h.lease(h.session) is None
        files = list(library.iterdir())
        for f in files:
            f.rename(root / "audio" / f.name)
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


def report(title: str, result: dict, total_audio: float, speeds: list[float], timescale: float) -> float:
    makespan = result["wall"] * timescale
    bound = total_audio / sum(speeds)
    stats = result["stats"]
    print(f"{title}: makespan {makespan:,.0f} s, lower bound {bound:,.0f} s, ratio {makespan / bound:.3f}")
    shares = "  ".join(f"{h.speed:g}x {h.busy / result['wall']:.0%}" for h in result["hosts"])
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
    ap.add_argument("--database-url", help="PostgreSQL (reset for each run!); default SQLite")
    ap.add_argument("--servers", type=int, default=1, help="servers on one database")
    ap.add_argument("--skip-single", action="store_true", help="skip the single 2-hour file")
    args = ap.parse_args()
    speeds = [float(s) for s in args.hosts.split(",")]
    cache = Path(tempfile.gettempdir()) / "batch-stt-sim"
    lengths = library_lengths(args.files, args.seed)
    total = sum(lengths)
    print(f"library: {len(lengths)} files, {total / 3600:.1f} h; hosts {args.hosts}; servers {args.servers}")
    ratios = {}
    for scheduler in ("speed", "fifo"):
        with tempfile.TemporaryDirectory(prefix="stt-sim-") as tmp:
            make_library(Path(tmp) / "library", lengths, cache)
            result = run_fleet(Path(tmp), speeds, args, scheduler)
            ratios[scheduler] = report(f"SCHEDULER={scheduler}", result, total, speeds, args.timescale)
    print(f"fifo / speed: {ratios['fifo'] / ratios['speed']:.2f}")
    if args.skip_single:
        return
    walls = {}
    for n in (1, 8):
        with tempfile.TemporaryDirectory(prefix="stt-sim-") as tmp:
            make_library(Path(tmp) / "library", [7200.0], cache)
            walls[n] = run_fleet(Path(tmp), [20.0] * n, args, "speed")["wall"]
    share = walls[8] / walls[1]
    print(f"one 2-hour file: 8 hosts {walls[8]:.1f} s wall, 1 host {walls[1]:.1f} s: {share:.3f} of one host")


if __name__ == "__main__":
    main()
