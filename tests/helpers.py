"""Plain helpers the tests import (fixtures live in conftest.py): paths, servers and clients as real
processes, the ledger on a fake clock, WER."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import requests

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STT_TEST_ASSETS", REPO.parent / "shared"))
WHISPER_CLI = Path(os.environ.get("WHISPER_CLI", REPO / "client/whisper/whisper.cpp/build/bin/whisper-cli"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(root: Path, **overrides) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTH_TOKENS", "ADMIN_TOKENS", "AUTH_USERS_FILE")}
    env.update(
        {
            "AUDIO_DIR": str(root / "audio"),
            "DATA_DIR": str(root / "data"),
            "LOG_FILE": str(root / "data" / "events.log"),
            "HOST": "127.0.0.1",
            "SCAN_INTERVAL": "0",
            # One host cannot check itself: tests of validation turn it on, with a second host.
            "VALIDATION": "off",
        }
    )
    env.update({k: str(v) for k, v in overrides.items()})
    (root / "audio").mkdir(parents=True, exist_ok=True)
    return env


def make_settings(root: Path, **overrides):
    from server.settings import Settings

    return Settings.from_env(server_env(root, **overrides), dotenv_path=None)


class ServerProcess:
    """`stt-server serve` as a real process on 127.0.0.1 with a free port."""

    def __init__(self, root: Path, **overrides):
        self.root = root
        self.port = free_port()
        self.env = server_env(root, **{"PORT": self.port, **overrides})
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> ServerProcess:
        log = open(self.root / "server.out", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            env=self.env,
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.root / 'server.out').read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    self.wait_probed(deadline)
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not come up")

    def wait_probed(self, deadline: float) -> None:
        """While splitting is on, files go out once probed: wait for the housekeeping thread's first
        pass, as a client would by asking again (SQLite only: reads the database file)."""
        import sqlite3

        db = Path(self.env["DATA_DIR"]) / "batch-stt.db"
        if "DATABASE_URL" in self.env or not db.exists():
            return
        unprobed = (
            "SELECT count(*) FROM task WHERE duration_ms IS NULL AND parent_id IS NULL"
            " AND size > 0 AND state NOT IN ('missing', 'held')"
        )
        while time.monotonic() < deadline:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                if not c.execute(unprobed).fetchone()[0]:
                    return
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )


def copy_audio(shared: Path, audio_dir: Path, names: dict[str, str]) -> None:
    """names: target relative path -> file in shared/audio."""
    for target, source in names.items():
        dest = audio_dir / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / "audio" / source, dest)


def wer_percent(reference: str, hypothesis: str) -> float:
    """Word error rate after lower-casing and dropping punctuation."""
    import re

    import jiwer

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w\s']", " ", s.lower()).split())

    return 100 * jiwer.wer(norm(reference), norm(hypothesis))


def client_env(root: Path, server_url: str, model: Path, name: str, **overrides) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTH_ENABLED", "USERNAME", "PASSWORD", "AUTH_TOKEN")}
    env.update(
        {
            "SERVER_URL": server_url,
            "WHISPER_CLI": str(WHISPER_CLI),
            "WHISPER_MODEL": str(model),
            "THREADS": "2",
            "NODE_NAME": name,
            "WORK_DIR": str(root / f"work-{name}"),
            "POLL_SECONDS": "0.5",
            "RETRY_MAX_SECONDS": "2",
            # Several clients and servers share this machine in a test: none pauses for the others' load.
            "SUSPEND_CPU_LOAD": "0",
        }
    )
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def start_transcribing(root: Path, server_url: str, model: Path, name: str, *args: str) -> subprocess.Popen:
    """`stt-client run ARGS` (one thread) as a process, returned once whisper-cli is at work on a task."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", *args],
        env=client_env(root, server_url, model, name, THREADS=1),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    while not list((root / f"work-{name}").glob("*/input.wav")):  # transcribing now
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    return proc


def run_client(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", "run", *args],
        env=env,
        cwd=Path(env["WORK_DIR"]).parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def process_state(pid: int) -> str:
    """A process's state letter (R, S, T: stopped, ...); "" when it is gone or unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""


class Clock:
    """A clock the test moves by hand: leases expire when the test says so."""

    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_ledger(
    db: str, clock: Optional[Clock] = None, max_attempts: int = 3, lease_seconds: int = 60, **options: Any
) -> Any:
    """A ledger on `db`; `scheduler`, `replica_budget`, `cooldown` as the server would set them."""
    from server.ledger import Assigner, CooldownRule, Ledger
    from server.ledger.events import EventLog
    from server.ledger.policy import SchedulerKind

    assigner = Assigner(options.pop("scheduler", SchedulerKind.SPEED), options.pop("replica_budget", 0.05))

    return Ledger.open(
        db,
        lease_seconds=lease_seconds,
        legacy_lease_seconds=lease_seconds * 10,
        max_attempts=max_attempts,
        events=EventLog(stream=io.StringIO()),
        clock=clock or Clock(),
        assigner=assigner,
        cooldown=options.pop("cooldown", CooldownRule()),
        snapshot_seconds=options.pop("snapshot_seconds", 0.0),  # each claim sees the fleet as it is
        **options,
    )


def add_tasks(ledger: Any, n: int, lang: str = "auto") -> list[str]:
    from server.disk.scanner import task_id_for
    from server.ledger import FoundFile

    files = [
        FoundFile(task_id_for(f"f{i:05}.mp3"), f"f{i:05}.mp3", f"f{i:05}", lang, 100, 1.0, False) for i in range(n)
    ]
    ledger.catalogue.sync_files(files, complete_scan=False)
    return [f.task_id for f in files]


# Spoken by espeak-ng between the shared recordings: distinct words, so a word lost or doubled at a
# cut shows in the alignment.
PARAGRAPHS = (
    "The old lighthouse keeper climbed the narrow stairs every evening. He lit the great lamp and watched "
    "the ships pass in the dark. Storms came often in the autumn, and the waves broke against the rocks "
    "below. Still, he never missed a single night in forty years.",
    "Our committee met on Tuesday to discuss the new library budget. The treasurer reported that the costs "
    "of heating and repairs had risen sharply. Several members proposed a public fundraising drive in the "
    "spring. After a long debate, the plan was approved by a narrow vote.",
    "Mountain rivers carry cold water from melting glaciers down to the valleys. Trout swim against the "
    "current, searching for insects near the surface. In summer, hikers follow the trails along the banks "
    "and rest in the shade of tall pines. At night the sound of the water fills the whole forest.",
)


def build_long_speech(shared: Path, dest: Path, pause: float = 1.5) -> str:
    """Real speech (shared/audio) and espeak-ng paragraphs with pauses between them, about 3.5
    minutes, as a 64 kb/s MP3 at `dest`. Returns the reference transcript."""
    work = dest.parent / f".{dest.stem}-clips"
    work.mkdir(parents=True, exist_ok=True)
    clips = [(shared / "audio/millbrook.mp3", (shared / "audio/millbrook.txt").read_text())]
    for i, text in enumerate(PARAGRAPHS):
        wav = work / f"p{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        clips.append((wav, text))
        if i == 0:
            clips.append((shared / "audio/jfk.mp3", (shared / "audio/jfk.txt").read_text()))
    inputs: list[str] = []
    graph = ""
    for i, (path, _) in enumerate(clips):
        inputs += ["-i", str(path)]
        graph += f"[{i}:a]aresample=16000,aformat=channel_layouts=mono,apad=pad_dur={pause}[c{i}];"
    graph += "".join(f"[c{i}]" for i in range(len(clips))) + f"concat=n={len(clips)}:v=0:a=1"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-b:a", "64k", str(dest)], check=True
    )
    shutil.rmtree(work)
    return " ".join(text.strip() for _, text in clips)


def post_endless_multipart(url: str, field: str, megabytes: int = 200) -> Optional[int]:
    """POST a multipart body of `megabytes` MB, chunked (no Content-Length: the server cannot refuse
    it up front). The status, or None when the server closed the connection mid-body (also a refusal)."""

    def chunks() -> Iterator[bytes]:
        yield f'--zz\r\nContent-Disposition: form-data; name="{field}"; filename="big"\r\n\r\n'.encode()
        for _ in range(megabytes):
            yield b"x" * 1024 * 1024

    headers = {"Content-Type": "multipart/form-data; boundary=zz"}
    try:
        return requests.post(url, data=chunks(), headers=headers, timeout=60).status_code
    except requests.ConnectionError:
        return None


class Kept:
    """ledger.Results for ledger tests with validation off: the upload is kept (`keep`), never held."""

    def __init__(self, keep: Callable[[Any], None] = lambda task: None):
        self.keep = keep

    def hold(self, task: Any, attempt_id: int) -> None:
        raise AssertionError("validation is off: no result is held")

    agrees = promote = reopen = hold
