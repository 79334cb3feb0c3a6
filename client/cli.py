"""stt-client: the volunteer's daemon and tools."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import media, transcribe
from .api import Rejected, ServerAPI, Transient
from .benchmark import bench_file
from .courtesy import describe_status
from .doctor import checks, sample_audio
from .guard import whisper_config
from .notify import NotifySetupError, notifier_for
from .outbox import Entry, Outbox
from .progress import Display
from .settings import ClientSettings, SettingsError
from .setup import Answers, Setup, SetupError
from .submit import SubmitError, Submitter
from .worker import Worker

app = typer.Typer(
    help="batch-stt client: transcribe audio for a batch-stt server with whisper.cpp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()


def load(need_server: bool = True) -> ClientSettings:
    try:
        return ClientSettings.from_env(need_server=need_server)
    except SettingsError as e:
        typer.echo(f"configuration error: {e}", err=True)
        raise typer.Exit(2) from None


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@app.command()
def run(
    once: bool = typer.Option(False, "--once", help="do one task, then exit"),
    max_tasks: Optional[int] = typer.Option(None, "--max-tasks", help="exit after N tasks"),
    until_idle: bool = typer.Option(False, "--until-idle", help="exit when the server has no task for us"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Work for the server: lease, transcribe, upload, repeat. Ctrl-C finishes the current task first."""
    setup_logging(verbose)
    s = load()
    try:
        notifier = notifier_for(s.node_name, s.gotify_url, s.gotify_key, s.notify_urls)
    except NotifySetupError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from None

    def refused(entry: Entry, reason: str) -> None:
        notifier.send(f"the server refused the {entry.kind} for task {entry.task_id}: {reason}")

    worker = Worker(s, ServerAPI(s), Outbox(s.outbox_dir, on_refused=refused), Display(), notifier)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.request_stop())
    worker.display.info(f"{s.node_name}: serving {s.server_url} with {s.whisper_model.name}, {s.threads} threads")
    worked = worker.run(once=once, max_tasks=max_tasks, until_idle=until_idle)
    worker.display.info(f"done: worked on {worked} task(s)")
    raise typer.Exit(130 if worker.aborting.is_set() else 0)


@app.command("transcribe")
def transcribe_files(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: beside each file)"),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="e.g. en, de, auto"),
):
    """Transcribe local files with the same pipeline, no server needed."""
    setup_logging(False)
    s = load(need_server=False)
    display = Display()
    failed = 0
    for f in files:
        with tempfile.TemporaryDirectory(prefix="stt-") as tmp:
            try:
                display.start(f"transcribing {f.name}")
                result = transcribe.transcribe_file(
                    whisper_config(s),
                    f,
                    Path(tmp),
                    language or s.language or "auto",
                    lambda percent, _: display.update(percent),
                )
                display.finish()
            except (media.MediaError, transcribe.TranscribeError) as e:
                display.finish()
                console.print(f"[red]{f}: {e}[/red]")
                if getattr(e, "stderr_tail", ""):
                    console.print(e.stderr_tail, style="dim", highlight=False)
                failed += 1
                continue
            dest = out or f.parent
            dest.mkdir(parents=True, exist_ok=True)
            for fmt, p in result.files.items():
                shutil.copyfile(p, dest / f"{f.stem}.{fmt}")
            console.print(
                f"[green]{f.name}[/green]: {result.audio_seconds:.0f} s in {result.seconds:.1f} s -> {dest / f.stem}.*"
            )
            console.print(result.files["txt"].read_text(encoding="utf-8", errors="replace").strip(), highlight=False)
    raise typer.Exit(1 if failed else 0)


@app.command()
def submit(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="audio or video files"),
    server: Optional[str] = typer.Option(None, "--server", help="overrides SERVER_URL"),
    fmt: str = typer.Option("txt", "--format", help="txt, vtt, srt, json or md"),
    wait: bool = typer.Option(False, "--wait", help="wait for the transcripts and write them"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the transcripts (default: beside each file)"),
    language: Optional[str] = typer.Option(None, help="auto, or a two-letter code (default: the server's auto)"),
    model: Optional[str] = typer.Option(None, help="least model tier: base, small, medium or large"),
    priority: Optional[int] = typer.Option(None, help="higher goes first (server default: before the backlog)"),
) -> None:
    """Upload files as jobs to the server; with --wait, follow them and write FILE.FORMAT. Exit 1 if any failed."""
    if fmt not in ("txt", "vtt", "srt", "json", "md"):
        raise typer.BadParameter("--format must be txt, vtt, srt, json or md")
    s = load(need_server=False)
    api = ServerAPI(dataclasses.replace(s, server_url=(server or s.server_url).rstrip("/")))
    sub = Submitter(api)
    try:
        jobs = [sub.submit(f, language, model, priority) for f in files]
    except SubmitError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None
    for f, j in zip(files, jobs, strict=True):
        console.print(f"{f.name}: job {j['id']} {j['state']} ({j['status_url']})")
    if not wait:
        return
    display, progress = Display(), {j["id"]: 0.0 for j in jobs}

    def shown(job: dict) -> None:
        progress[job["id"]] = 100.0 if job["state"] in ("done", "failed", "cancelled") else job["progress"]
        display.update(sum(progress.values()) / len(progress))

    display.start(f"transcribing {len(jobs)} file(s)")
    try:
        ended = sub.wait(jobs, shown)
        display.finish()
        failed = sum(not _write_transcript(sub, f, j, fmt, out) for f, j in zip(files, ended, strict=True))
    except SubmitError as e:
        display.finish()
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None
    raise typer.Exit(1 if failed else 0)


def _write_transcript(sub: Submitter, file: Path, job: dict, fmt: str, out: Optional[Path]) -> bool:
    """FILE.FORMAT for a done job (False, said, for one that did not end done)."""
    if job["state"] != "done":
        console.print(f"[red]{file.name}: {job['state']}: {job.get('error') or ''}[/red]")
        return False
    dest = (out or file.parent) / f"{file.stem}.{fmt}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(sub.fetch(job, fmt), encoding="utf-8")
    console.print(f"[green]{file.name}[/green] -> {dest}")
    return True


@app.command()
def bench(
    file: Optional[Path] = typer.Option(None, "--file", help="audio to time (default: whisper.cpp's jfk sample)"),
):
    """Measure this machine's real-time factor with the configured model; sent with lease requests."""
    s = load(need_server=False)
    sample = file or sample_audio(s)
    if sample is None:
        console.print("[red]no sample audio found; pass --file[/red]")
        raise typer.Exit(1)
    with tempfile.TemporaryDirectory(prefix="stt-bench-") as tmp:
        try:
            result = transcribe.transcribe_file(
                whisper_config(s), sample, Path(tmp), "en" if s.english_only else "auto"
            )
        except (media.MediaError, transcribe.TranscribeError) as e:
            console.print(f"[red]benchmark failed: {e}[/red]\n{e.stderr_tail}")
            raise typer.Exit(1) from None
    seconds = result.audio_seconds
    rtf = seconds / result.seconds
    s.work_dir.mkdir(parents=True, exist_ok=True)
    bench_file(s).write_text(
        json.dumps(
            {
                "model": s.whisper_model.name,
                "rtf": round(rtf, 3),
                "threads": s.threads,
                "audio_seconds": seconds,
                "measured_at": time.time(),
            }
        )
    )
    console.print(
        f"{s.whisper_model.name}, {s.threads} threads: {seconds:.1f} s of audio in {result.seconds:.2f} s "
        f"= {rtf:.1f}x real time (saved to {bench_file(s)})"
    )


@app.command()
def doctor():
    """Check ffmpeg, whisper-cli, the model, the server and the credentials; say how to fix each."""
    rows = checks(load())
    table = Table(title="stt-client doctor")
    for col in ("check", "", "detail", "fix"):
        table.add_column(col, overflow="fold")
    for name, ok, detail, fix in rows:
        table.add_row(name, "[green]ok[/green]" if ok else "[red]FAIL[/red]", detail, fix)
    console.print(table)
    raise typer.Exit(0 if all(ok for name, ok, *_ in rows if name != "benchmark") else 1)


@app.command()
def setup(
    server: Optional[str] = typer.Option(None, "--server", help="the server's URL (asked when not given)"),
    token: Optional[str] = typer.Option(None, "--token", help="your volunteer token (stt-server token add)"),
    name: str = typer.Option("", "--name", help="this machine's name on the server (default: the host name)"),
    model: str = typer.Option("", "--model", help="a model name (base-q5_1, small, ...) or a local file"),
    backend: str = typer.Option("", "--backend", help="cpu, cuda, vulkan, metal, ... (default: detected)"),
    service: Optional[bool] = typer.Option(None, "--service/--no-service", help="install a user service"),
    yes: bool = typer.Option(False, "--yes", "-y", help="answer yes to every question; ask nothing"),
    force: bool = typer.Option(False, "--force", help="set up again although .env exists"),
):
    """Set this machine up as a volunteer: ffmpeg, whisper.cpp, a model, .env, bench, doctor, service."""
    if not server:
        if yes:
            typer.echo("--yes needs --server URL", err=True)
            raise typer.Exit(2)
        server = typer.prompt("server URL (https://...)")
    if token is None and not yes:
        token = typer.prompt("your token (empty for none)", default="", show_default=False)

    def confirm(question: str) -> bool:
        return yes or typer.confirm(question, default=True)

    steps = Setup(Path(".env").resolve(), typer.echo, confirm)
    try:
        steps.run(Answers(server.rstrip("/"), token or "", name, model, backend, service), force)
    except SetupError as e:
        typer.echo(f"setup: {e}", err=True)
        raise typer.Exit(1) from None


@app.command()
def stats():
    """What this volunteer gave: its line in the server's volunteers table, and its rank."""
    s = load()
    try:
        board = ServerAPI(s).volunteers(s.node_name)
    except (Transient, Rejected) as e:
        typer.echo(f"cannot read the volunteers table from {s.server_url}: {e}", err=True)
        raise typer.Exit(1) from None
    rows = board["volunteers"]
    mine = next((v for v in rows if v["rank"] == board.get("you")), None)
    if mine is None:
        typer.echo(f"no results delivered yet ({len(rows)} volunteers so far)")
        return
    typer.echo(
        f"{mine['name']}: rank {mine['rank']} of {len(rows)}, {mine['audio_hours']:.2f} h of audio, "
        f"{mine['recent_hours_per_day']:.2f} h/day recently, {mine['results']} results "
        f"({mine['valid_results']} accepted), {mine['hosts']} host(s): {', '.join(mine['backends']) or '?'}"
    )


@app.command()
def status():
    """Is the daemon working, paused (and why), or idle? Read from the state it leaves in WORK_DIR."""
    s = load(need_server=False)
    line = describe_status(s.work_dir / "status.json")
    typer.echo(line)
    raise typer.Exit(0 if not line.startswith("not running") else 1)


if __name__ == "__main__":
    app()
