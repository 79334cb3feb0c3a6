"""Fixtures shared by unit and integration tests (plain helpers are in tests/helpers.py)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import SHARED, WHISPER_CLI, ServerProcess, free_port, make_settings


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (`CI` set) a skip is a failure: CI installs what every test needs, so a skip there
    means something it should have installed is missing, and a green run would hide it."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which must install what this test needs: {reason}"


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
        # While splitting is on, files go out once probed: wait for the housekeeping thread's first pass.
        for _ in range(200):
            if not app.state.ctx.ledger.catalogue.unprobed():
                break
            time.sleep(0.05)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


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
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"], capture_output=True
    )
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
