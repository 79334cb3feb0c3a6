"""`stt-client setup --yes` in a fresh home: from the checkout to a volunteer that completes a real
task (CPU backend, the shared model copied and checked); a second run changes nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import requests

from tests.helpers import copy_audio

TOKEN = "setup-volunteer-0123456789"
KEEP = ("PATH", "LANG", "LC_ALL", "CI", "TMPDIR")  # nothing of the developer's own client settings


def test_setup_makes_a_working_volunteer_and_a_second_run_only_checks(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    srv = server_process(AUTH_TOKENS=f"vol:{TOKEN}").start()
    home, site = tmp_path / "home", tmp_path / "site"
    home.mkdir()
    site.mkdir()
    env = {k: v for k, v in os.environ.items() if k in KEEP} | {"HOME": str(home), "SUSPEND_CPU_LOAD": "0"}
    setup = [sys.executable, "-m", "client.cli", "setup", "--yes", "--server", srv.url, "--token", TOKEN,
             "--name", "vol-laptop", "--model", str(shared / "models/ggml-tiny.en.bin"), "--no-service"]  # fmt: skip
    first = subprocess.run(setup, cwd=site, env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "backend: cpu (" in first.stdout and "SHA-256 verified" in first.stdout
    model = home / ".local/share/batch-stt/models/ggml-tiny.en.bin"
    dotenv = site / ".env"
    assert model.is_file() and stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    written = dotenv.read_text()
    assert f"SERVER_URL={srv.url}\n" in written and f"AUTH_TOKEN={TOKEN}\n" in written
    assert f"WHISPER_MODEL={model}\n" in written and "WHISPER_BACKEND=cpu\n" in written
    assert (home / ".cache/batch-stt/bench.json").is_file()  # bench ran, with the new .env

    run = subprocess.run([sys.executable, "-m", "client.cli", "run", "--until-idle"], cwd=site, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tasks = requests.get(f"{srv.url}/api/v1/tasks", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    assert [t["state"] for t in tasks] == ["done"]

    before = (written, dotenv.stat().st_mtime_ns, model.stat().st_mtime_ns)
    second = subprocess.run(setup, cwd=site, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "already set up, checking only" in second.stdout, second.stdout
    assert (dotenv.read_text(), dotenv.stat().st_mtime_ns, model.stat().st_mtime_ns) == before
