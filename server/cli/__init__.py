"""stt-server: run the server and look after the task queue from the shell (who may do what: access.py)."""

from __future__ import annotations

import csv
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from stt_common.formats import hms

from ..ledger import HostView, MigrationError, NotFound, TaskState, TaskView, upgrade_database
from ..ops.overview import stalled_text
from ..settings import SettingsError
from . import access
from .shared import app, config_error, console, context, load_settings


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="overrides HOST"),
    port: Optional[int] = typer.Option(None, help="overrides PORT"),
) -> None:
    """Start the HTTP server (scans AUDIO_DIR at start and every SCAN_INTERVAL seconds)."""
    import uvicorn

    settings = load_settings()
    if settings.workers > 1:  # counters shared by the workers, merged at each scrape (server/ops/metrics.py)
        shared = settings.data_dir / "metrics"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)  # before prometheus-client is imported
    from ..app import create_app, settle_collector

    try:
        api = create_app(settings)
    except (SettingsError, MigrationError) as e:
        raise config_error(e) from None
    if settings.workers == 1:  # each worker process settles its own (app_from_env)
        settle_collector()
    options: dict[str, Any] = dict(
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    if settings.workers > 1:  # SQLite in WAL mode is safe across processes; claims stay atomic
        uvicorn.run("server.app:app_from_env", factory=True, workers=settings.workers, **options)
    else:
        uvicorn.run(api, **options)


@app.command()
def migrate() -> None:
    """Bring the database to this release's schema (serve and every other command also do it at start)."""

    settings = load_settings()
    try:
        settings.prepare_dirs()
        before, after = upgrade_database(settings.database_url, settings.sqlite_synchronous)
    except (SettingsError, MigrationError) as e:
        raise config_error(e) from None
    console.print(
        f"database schema: {before or 'empty'} -> {after}"
        if before != after
        else f"database schema is current ({after})"
    )


@app.command()
def scan() -> None:
    """Scan AUDIO_DIR now: queue new files, mark vanished ones missing, checksum and probe new ones."""
    from .. import housekeeping

    ctx = context(load_settings())
    r = ctx.scan()
    console.print(
        f"added {r.added}, changed {r.changed}, missing {r.missing}, back {r.returned}; "
        f"checksummed {housekeeping.checksum(ctx)}, probed {housekeeping.probe(ctx)}"
    )


@app.command()
def status() -> None:
    """Counts by state, audio hours done and left, active clients, and every host's speed and cool-down."""
    ctx = context(load_settings())
    s = ctx.ledger.reports.stats()
    table = Table(title="batch-stt tasks")
    table.add_column("state")
    table.add_column("tasks", justify="right")
    for state, n in s.counts.items():
        table.add_row(state.value, str(n))
    console.print(table)
    done_h = s.seconds_done / 3600
    # Hours left are estimated from bytes, at the bytes-per-second seen in finished work.
    rate = s.bytes_done / s.seconds_done if s.seconds_done else None
    left = f"{s.bytes_left / rate / 3600:.1f} h (estimated)" if rate else f"{s.bytes_left / 1e6:.1f} MB"
    console.print(f"audio done: {done_h:.2f} h   left: {left}   active leases: {s.active_leases}")
    console.print(f"active clients (15 min): {', '.join(s.active_clients) or 'none'}")
    console.print(f"scheduler: {ctx.settings.scheduler}   replicas issued: {s.replicas} (won {s.replicas_won})")
    console.print(f"validation: {ctx.settings.validation}   audio transcribed again to check: {hms(s.check_seconds)}")
    stalled = ctx.ledger.reports.stalled_checks()
    if stalled:
        console.print(f"[yellow]{stalled_text(len(stalled))}[/yellow]")
        for check in stalled[:10]:
            since = time.strftime("%F %H:%M", time.localtime(check.held_since))
            console.print(f"  held since {since}: {check.where} ({check.language})", markup=False)
    for f in ctx.ledger.reports.split_files():
        who = f"  speakers: {', '.join(f.speakers)}" if f.speakers else ""
        console.print(f"  in parts ({f.state}): {f.path}  {f.parts_done}/{f.parts} parts done{who}", markup=False)
    hosts_table(ctx.ledger.fleet.hosts())


def trust(h: HostView) -> str:
    """Validation's view of a host: trusted, or its run of confirmed results; outvoted ones."""
    shown = "trusted" if h.trusted else f"checked ({h.valid_streak} confirmed)"
    return f"{shown}, {h.invalid_results} invalid" if h.invalid_results else shown


def hosts_table(hosts: list[HostView]) -> None:
    """Per host: its speed (learned, else its benchmark), what it did, and whether it is cooling down."""
    table = Table(title="hosts")
    for col in (
        "host",
        "model / backend",
        "speed",
        "bench",
        "done",
        "failed",
        "replicas (won)",
        "trust",
        "last seen",
        "cool-down",
    ):
        table.add_column(col, overflow="fold")
    now = time.time()
    for h in hosts:
        speed = f"{h.speed:.1f}x ({h.samples})" if h.speed else "-"
        cooling = f"until {time.strftime('%H:%M', time.localtime(h.cooldown_until))}" if h.cooldown_until else ""
        if h.strikes and not cooling:
            cooling = f"{h.strikes} strike(s)"
        table.add_row(
            h.name,
            f"{h.model or '?'} / {h.backend or '?'}",
            speed,
            f"{h.bench_rtf:.1f}x" if h.bench_rtf else "-",
            str(h.tasks_done),
            str(h.tasks_failed),
            f"{h.replicas} ({h.replicas_won})",
            trust(h),
            f"{hms(max(0.0, now - h.last_seen))} ago",
            cooling,
        )
    console.print(table)


@app.command("clear-cooldown")
def clear_cooldown(name: str = typer.Argument(..., help="the host's name (NODE_NAME)")) -> None:
    """Let a cooling-down host have work again at once, and forget its strikes."""
    if not context(load_settings()).ledger.fleet.clear(name):
        console.print(f"[red]no host named {name!r}[/red]")
        raise typer.Exit(1)
    console.print(f"{name} may have work again")


@app.command()
def tasks(
    state: Optional[TaskState] = typer.Option(None, "--state", help="only tasks in this state"),
    limit: int = typer.Option(200, help="at most this many rows"),
) -> None:
    """List tasks, with the last error of each; a long file shows its parts done, a part its range."""
    ctx = context(load_settings())
    page = ctx.ledger.reports.tasks(state, limit=limit)
    progress = ctx.ledger.parts.progress(t.id for t in page if t.parent_id is None)

    def parts(t: TaskView) -> str:
        if t.start_ms is not None and t.end_ms is not None:
            return f"{hms(t.start_ms / 1000)}-{hms(t.end_ms / 1000)}"
        done, total = progress.get(t.id, (0, 0))
        return f"{done}/{total} done" if total else ""

    rows = [
        (
            t.id,
            t.path,
            parts(t),
            t.language,
            t.state.value,
            str(t.attempts),
            (t.last_error or "").replace("\n", " | ")[-400:],
        )
        for t in page
    ]
    if not console.is_terminal:  # piped: one greppable line per task
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for col in ("path", "parts", "lang", "state", "attempts", "last error"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command()
def requeue(
    task_id: Optional[str] = typer.Argument(None, help="one task id"),
    failed: bool = typer.Option(False, "--failed", help="every failed task"),
) -> None:
    """Put failed tasks (or one named task) back in the queue with a fresh attempt budget."""
    if not task_id and not failed:
        console.print("name a task id or pass --failed")
        raise typer.Exit(2)
    ctx = context(load_settings())
    try:
        ids = ctx.ledger.catalogue.requeue([task_id] if task_id else [], failed=failed)
    except NotFound as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None
    console.print(f"requeued {len(ids)} task(s)")


@app.command()
def export(out: Optional[Path] = typer.Option(None, "--out", help="file to write (default: stdout)")) -> None:
    """All tasks as CSV."""
    ctx = context(load_settings())
    fields = [
        "id",
        "path",
        "language",
        "state",
        "attempts",
        "size",
        "sha256",
        "duration_ms",
        "parent_id",
        "start_ms",
        "end_ms",
        "audio_seconds",
        "done_at",
        "last_error",
    ]
    with open(out, "w", newline="", encoding="utf-8") if out else sys.stdout as f:
        w = csv.writer(f)
        w.writerow(fields)
        offset = 0
        while batch := ctx.ledger.reports.tasks(None, limit=5000, offset=offset):
            for t in batch:
                w.writerow([str(v) if (v := getattr(t, k)) is not None else "" for k in fields])
            offset += len(batch)


app.add_typer(access.tokens, name="token")
app.command("add-user")(access.add_user)
