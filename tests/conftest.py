"""Shared fixtures: paths to ../shared, settings on tmp dirs, a real server process on loopback."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STT_TEST_ASSETS", REPO.parent / "shared"))
WHISPER_CLI = Path(os.environ.get("WHISPER_CLI", REPO / "client/whisper/whisper.cpp/build/bin/whisper-cli"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "audio" / "jfk.mp3").is_file():
        pytest.skip(f"test assets not found in {SHARED} (set STT_TEST_ASSETS)")
    return SHARED


@pytest.fixture(scope="session")
def whisper_cli() -> Path:
    if not os.access(WHISPER_CLI, os.X_OK):
        pytest.skip(f"whisper-cli not built at {WHISPER_CLI}: run client/whisper/build.sh")
    return WHISPER_CLI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(root: Path, **overrides) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTH_TOKENS", "ADMIN_TOKENS", "AUTH_USERS_FILE")}
    env.update({
        "AUDIO_DIR": str(root / "audio"),
        "DATA_DIR": str(root / "data"),
        "LOG_FILE": str(root / "data" / "events.log"),
        "HOST": "127.0.0.1",
        "SCAN_INTERVAL": "0",
    })
    env.update({k: str(v) for k, v in overrides.items()})
    (root / "audio").mkdir(parents=True, exist_ok=True)
    return env


def make_settings(root: Path, **overrides):
    from server.settings import Settings

    return Settings.from_env(server_env(root, **overrides), dotenv_path=None)


@pytest.fixture
def api(tmp_path):
    """A TestClient factory over a fresh app: api(**settings) -> client (audio dir: tmp_path/audio)."""
    from fastapi.testclient import TestClient

    from server.app import create_app

    clients = []

    def make(**overrides):
        app = create_app(make_settings(tmp_path, **overrides), event_stream=io.StringIO())
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


class ServerProcess:
    """`stt-server serve` as a real process on 127.0.0.1 with a free port."""

    def __init__(self, root: Path, **overrides):
        self.root = root
        self.port = free_port()
        self.env = server_env(root, **{"PORT": self.port, **overrides})
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "ServerProcess":
        log = open(self.root / "server.out", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=self.env, cwd=self.root,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.root / 'server.out').read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("server did not come up")

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
        return subprocess.run([sys.executable, "-m", "server.cli", *args], env=self.env, cwd=self.root,
                              capture_output=True, text=True, timeout=60)


@pytest.fixture
def server_process(tmp_path):
    started = []

    def make(**overrides) -> ServerProcess:
        s = ServerProcess(tmp_path, **overrides)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


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
    env.update({"SERVER_URL": server_url, "WHISPER_CLI": str(WHISPER_CLI), "WHISPER_MODEL": str(model),
                "THREADS": "2", "NODE_NAME": name, "WORK_DIR": str(root / f"work-{name}"),
                "POLL_SECONDS": "0.5", "RETRY_MAX_SECONDS": "2"})
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def run_client(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "client.cli", "run", *args], env=env, cwd=Path(env["WORK_DIR"]).parent,
                          capture_output=True, text=True, timeout=timeout)


_FIGURES: list[str] = []


@pytest.fixture
def report():
    """report(line): a measured figure, printed in pytest's closing summary (also in CI logs)."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures measured by the tests")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql package), or skip."""
    import tempfile

    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL is not installed (scripts/install.sh --dev installs it)")
    pytest.importorskip("psycopg2")
    bindir = initdb[-1].parent
    root = Path(tempfile.mkdtemp(prefix="stt-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                    "start"], check=True, capture_output=True)
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                   capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres):
    """A fresh, empty database in the throwaway cluster."""
    import uuid

    import psycopg2

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(postgres.replace("postgresql+psycopg2", "postgresql"))
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{postgres}/{name}"
