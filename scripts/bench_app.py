#!/usr/bin/env python3
"""The server's own cost of a lease -> result cycle, without sockets or a load generator: the real
app (ledger on SQLite, result files on disk) and scripts/ceiling_app.py, each called in-process
through ASGI by C concurrent simulated clients on one event loop. Prints CPU per cycle (all threads)
and cycles/s for both, and their ratio.

scripts/loadtest.py --ceiling measures what a client sees, but on a small machine its ceiling is
bounded by the load generator (Python threads doing HTTP) sharing the cores: this says how much of
a cycle is the app's own, to find and weigh what costs in it.

    python scripts/bench_app.py [--tasks 6000] [--cycles 4000] [--clients 64]
    python scripts/bench_app.py --compare-routes 8   # the daemons' routes: their own handlers against
                                                     # FastAPI's generic handling, rounds alternating

The machine is shared and noisy: compare figures from one run, never across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvloop
from sqlalchemy import create_engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from ceiling_app import app as ceiling  # noqa: E402
from loadgen import server_settings, small_library, wait_for_housekeeping  # noqa: E402

from server.app import create_app, settle_collector  # noqa: E402
from server.http import direct  # noqa: E402
from server.settings import Settings  # noqa: E402

BOUNDARY = b"benchboundary"
RESULT = (
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="meta"\r\n\r\n{"model":"load"}\r\n'
    b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="txt"; filename="t.txt"\r\n\r\nhello\n\r\n'
    b"--" + BOUNDARY + b"--\r\n"
)
CAPS = {"backend": "load", "model": "ggml-base.bin", "rtf": 1000}


async def call(app: Any, path: str, body: bytes, content_type: bytes) -> tuple[int, bytes]:
    """One POST through the app's ASGI interface, as uvicorn would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", content_type), (b"content-length", b"%d" % len(body))],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the body was read: a disconnect never comes
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


async def run_clients(app: Any, cycles: int, clients: int) -> tuple[int, float, float]:
    """`clients` hosts doing lease -> result until `cycles` are done: (cycles, wall s, CPU s)."""
    done = 0

    async def host(name: str) -> None:
        nonlocal done
        ask = json.dumps({"client": name, "capabilities": CAPS}).encode()
        while done < cycles:
            status, body = await call(app, "/api/v1/leases", ask, b"application/json")
            assert status == 200, (status, body)  # the load's hosts are the fleet's fastest: never told to wait
            token = json.loads(body)["token"]
            status, body = await call(
                app, f"/api/v1/leases/{token}/result", RESULT, b"multipart/form-data; boundary=" + BOUNDARY
            )
            assert status == 200, (status, body)
            done += 1

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(host(f"load-{n}") for n in range(clients)))
    return done, time.perf_counter() - wall, time.process_time() - cpu


async def measure(args: argparse.Namespace) -> dict[str, tuple[int, float, float]]:
    figures = {}
    await run_clients(ceiling, 200, 4)  # warm
    figures["ceiling"] = await run_clients(ceiling, args.cycles, args.clients)
    with tempfile.TemporaryDirectory(prefix="stt-bench-app-") as tmp:
        async with served(Path(tmp), args.tasks) as app:
            figures["server"] = await run_clients(app, args.cycles, args.clients)
    return figures


async def compare_routes(args: argparse.Namespace) -> dict[str, list[float]]:
    """Two servers in this process, the daemons' two routes served by their own handlers in one and
    by FastAPI's generic handling in the other (server/http/direct.py), in alternating rounds: the CPU
    per cycle of each round."""
    per_round = args.cycles // args.rounds
    rounds: dict[str, list[float]] = {"direct": [], "generic": []}
    with tempfile.TemporaryDirectory(prefix="stt-bench-app-") as tmp:
        async with served(Path(tmp, "a"), args.tasks) as fast, served(Path(tmp, "b"), args.tasks, generic=True) as slow:
            for n in range(args.rounds):
                for name, app in [("direct", fast), ("generic", slow)][:: 1 if n % 2 else -1]:
                    cycles, _, cpu = await run_clients(app, per_round, args.clients)
                    rounds[name].append(cpu / cycles * 1000)
    return rounds


@asynccontextmanager
async def served(root: Path, tasks: int, generic: bool = False) -> AsyncIterator[Any]:
    """The real app over a library in `root`, its data beside it, warmed up."""
    small_library(root / "audio", tasks)
    os.environ["PATH"] = str(root)  # no ffprobe: this server is in this process
    app = create_app(Settings.from_env(server_settings(root), dotenv_path=None), event_stream=io.StringIO())
    if generic:
        app.router.routes[:] = direct.generic(app.router.routes)
    async with app.router.lifespan_context(app):
        db = create_engine(f"sqlite:///{root / 'data' / 'batch-stt.db'}")
        await asyncio.to_thread(wait_for_housekeeping, db)
        db.dispose()
        await run_clients(app, 200, 4)  # warm: compiled statements, the fleet's snapshot
        yield app


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=6000)
    ap.add_argument("--cycles", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument(
        "--compare-routes",
        dest="rounds",
        type=int,
        default=0,
        help="instead: the daemons' routes served directly against FastAPI's generic handling, this many rounds",
    )
    args = ap.parse_args()
    if args.cycles + args.clients + 300 > args.tasks:
        ap.error("--tasks must exceed --cycles + --clients by 300 (each cycle finishes a task)")
    settle_collector()  # as `stt-server serve` does; both apps run under it here
    if args.rounds:
        per_round = uvloop.run(compare_routes(args))
        for name, costs in per_round.items():
            print(f"{name}: {statistics.median(costs):.3f} ms CPU per cycle (median of {args.rounds} rounds)")
        pairs = [d / g for d, g in zip(per_round["direct"], per_round["generic"], strict=True)]
        print(f"direct / generic, round by round: {statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})")
        return 0
    figures = uvloop.run(measure(args))
    for name, (n, wall, cpu) in figures.items():
        print(f"{name}: {n / wall:.0f} cycles/s, {cpu / n * 1000:.3f} ms CPU per cycle ({n} cycles)")
    ceiling, server = (figures[k][2] / figures[k][0] for k in ("ceiling", "server"))
    print(f"CPU per cycle, ceiling / server: {ceiling / server:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
