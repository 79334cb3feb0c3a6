#!/usr/bin/env python3
"""The benchmarks' shared parts: the load generator (client processes doing lease -> result cycles),
starting a server on a free port, and the figures they print. Imported by loadtest.py,
bench_cold_start.py, bench_memory.py and simulate_fleet.py."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Union

import requests
from sqlalchemy import Engine, create_engine, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The load's own clients: the fleet's fastest (a benchmark clamped to twice the fastest measured), so
# the policy gives them work and every claim is a cycle, not a wait.
LOAD_CAPS = {"backend": "load", "model": "ggml-base.bin", "rtf": 1000}


def client_proc(url: str, threads: int, until: float, protocol: str, out: mp.Queue) -> None:
    """One OS process running `threads` simulated clients (spreads the load generator over cores).
    A plain 204 (nothing queued for this client) ends a client's loop; a wait (Retry-After) does not."""
    results: list[tuple[str, float, str, float]] = []  # (task_id, lease latency s, outcome, result latency s)
    lock = threading.Lock()

    def run(n: int) -> None:
        s = requests.Session()
        name = f"load-{os.getpid()}-{n}"
        while time.time() < until:
            t0 = time.perf_counter()
            if protocol == "legacy":
                r = s.get(f"{url}/task", stream=True)
                r.close()
                latency = time.perf_counter() - t0
                if r.status_code == 204:
                    break
                tid = r.headers["X-Task-ID"]
                t1 = time.perf_counter()
                ok = s.post(f"{url}/result", json={"id": tid, "vtt": "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"})
                outcome = "accepted" if ok.status_code == 200 else f"http {ok.status_code}"
            else:
                r = s.post(f"{url}/api/v1/leases", json={"client": name, "capabilities": LOAD_CAPS})
                latency = time.perf_counter() - t0
                if r.status_code == 204 and "Retry-After" in r.headers:
                    time.sleep(0.2)  # work is queued but held back (being probed, or for a faster host)
                    continue
                if r.status_code == 204:
                    break
                lease = r.json()
                tid = lease["task_id"]
                t1 = time.perf_counter()
                ok = s.post(
                    f"{url}/api/v1/leases/{lease['token']}/result",
                    data={"meta": '{"model":"load"}'},
                    files={"txt": ("t.txt", b"hello\n")},
                )
                outcome = ok.json()["status"] if ok.status_code == 200 else f"http {ok.status_code}"
            with lock:
                results.append((tid, latency, outcome, time.perf_counter() - t1))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(results)


def cpu_seconds(proc: subprocess.Popen) -> float:
    """CPU time of a server and its worker processes so far (user + system)."""
    import psutil

    procs = [psutil.Process(proc.pid)]
    procs += procs[0].children(recursive=True)
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def generate(url: Union[str, list[str]], args) -> tuple[list, float]:
    """The load from args.procs processes; with several servers, each process drives one of them."""
    urls = [url] if isinstance(url, str) else url
    queue: mp.Queue = mp.Queue()
    per_proc = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
    start = time.time()
    procs = [
        mp.Process(target=client_proc, args=(urls[i % len(urls)], n, start + args.seconds, args.protocol, queue))
        for i, n in enumerate(per_proc)
        if n
    ]
    for p in procs:
        p.start()
    rows = [r for _ in procs for r in queue.get()]
    for p in procs:
        p.join()
    return rows, time.time() - start


def print_figures(rows: list, elapsed: float, args, tasks: Optional[int] = None) -> None:
    lat = sorted(latency for _, latency, _, _ in rows)
    upload = sorted(latency for _, _, _, latency in rows)
    print(
        f"clients={args.clients} seconds={elapsed:.1f} tasks={tasks or args.tasks} workers={args.workers} "
        f"sync={args.sync} protocol={args.protocol}"
    )
    print(f"cycles: {len(rows)}  ->  {len(rows) / elapsed:.0f} cycles/s")
    if lat:
        print(
            f"lease latency: p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
        )
        print(
            f"result latency: p50 {statistics.median(upload) * 1000:.1f} ms, "
            f"p99 {upload[int(len(upload) * 0.99) - 1] * 1000:.1f} ms, max {upload[-1] * 1000:.1f} ms"
        )


def wait_ready(url: str, proc: subprocess.Popen, err: Path) -> bool:
    for _ in range(600):
        if proc.poll() is not None:
            break
        try:
            if requests.get(f"{url}/health/ready", timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    print("server did not start:", err.read_text()[-2000:])
    return False


def reset_database(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def small_library(audio: Path, files: int) -> None:
    """`files` small files under `audio`, 500 a folder: not audio (the lease path alone: with no
    ffprobe on the server's PATH, nothing is probed)."""
    for i in range(files):
        folder = audio / f"d{i // 500:03}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06}.mp3").write_bytes(b"ID3" + i.to_bytes(4, "big") * 64)


def server_settings(root: Path) -> dict[str, str]:
    """A benchmark server's settings: root/audio, its data in root/data, no periodic scan."""
    return {
        "AUDIO_DIR": str(root / "audio"),
        "DATA_DIR": str(root / "data"),
        "SCAN_INTERVAL": "0",
        "LEASE_SECONDS": "600",
        "LOG_FILE": str(root / "data" / "events.log"),
        # The lease path alone: one host's result is not held for another's check (simulate_fleet.py
        # measures what validation costs).
        "VALIDATION": "off",
    }


def wait_for_housekeeping(db: Engine, timeout: float = 120) -> None:
    """Until every file is checksummed: start-up hashing is not the hot path."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with db.connect() as c:
            if c.execute(text("select count(*) from task where sha256 is null")).scalar() == 0:
                return
        time.sleep(0.2)


def start_server(root: Path, args, **env: str) -> tuple[subprocess.Popen, str]:
    """`stt-server serve` on 127.0.0.1 over root/audio, its data in root/data (not yet ready)."""
    port = free_port()
    full = {
        **os.environ,
        **server_settings(root),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "SQLITE_SYNCHRONOUS": args.sync,
        "WORKERS": str(args.workers),
        **env,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve"],
        env=full,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "server.err", "ab"),
    )
    return server, f"http://127.0.0.1:{port}"
