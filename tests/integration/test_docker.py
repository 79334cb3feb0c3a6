"""The Dockerfile, built and run for real as ../shared/DOCKER_NOTES.md shows (no Docker engine and
no registry here): podman builds it on a local stand-in for python:3.11-slim, and its file system
runs under chroot as the image's own user, with the volumes bind-mounted. A real client on this
machine then finishes a task against the server inside the image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import REPO, client_env, copy_audio, free_port, run_client

IMAGE = "localhost/batch-stt-server"


def sh(*argv: str, timeout: float = 900) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def image(shared):
    if not shutil.which("podman") or os.geteuid() != 0:
        pytest.skip("needs podman and root (scripts/install.sh --dev installs podman)")
    sh("bash", str(shared / "tools/make-python-base.sh"))
    mounts = [f"-v={p}:{p}:ro" for p in ("/etc/ssl/certs", "/etc/pip.conf", "/opt/wheels") if Path(p).exists()]
    sh("podman", "build", "--format", "docker", "--isolation", "chroot", *mounts, "-t", IMAGE, str(REPO))
    return json.loads(sh("podman", "image", "inspect", IMAGE))[0]


def test_the_image_serves_a_real_client(image, shared, whisper_cli, tmp_path):
    config = image["Config"]
    assert config["User"] == "stt" and "8000/tcp" in config["ExposedPorts"]
    assert set(config["Volumes"]) == {"/audio", "/data"} and "/health/ready" in " ".join(image["Healthcheck"]["Test"])
    audio, data = tmp_path / "audio", tmp_path / "data"
    copy_audio(shared, audio, {"talks/jfk.mp3": "jfk.mp3"})
    data.mkdir()
    os.chown(data, 10001, 10001)  # the image's user owns /data
    root = Path(sh("podman", "image", "mount", IMAGE).strip())
    mounted: list[Path] = []
    server = None
    try:
        for source, target in ((audio, root / "audio"), (data, root / "data")):
            sh("mount", "--bind", str(source), str(target))
            mounted.append(target)
        sh("mount", "-t", "proc", "proc", str(root / "proc"))
        mounted.append(root / "proc")
        port = free_port()
        env = [e for e in config["Env"] if not e.startswith(("HOST=", "PORT="))]
        server = subprocess.Popen(
            ["chroot", "--userspec=10001:10001", str(root), "env", "-i", *env, "HOST=127.0.0.1", f"PORT={port}",
             "SCAN_INTERVAL=0", "VALIDATION=off", "stt-server", "serve"],  # one host: nothing to check it
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read() if server.stdout else ""
            try:
                if requests.get(f"{url}/health/ready", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        env_client = client_env(tmp_path, url, shared / "models/ggml-tiny.en.bin", "laptop")
        assert run_client(env_client, "--until-idle").returncode == 0
        [task] = requests.get(f"{url}/api/v1/tasks", timeout=10).json()
        assert (task["path"], task["state"], task["duration_ms"]) == ("talks/jfk.mp3", "done", 11_000)
        result = data / "results" / "talks" / "jfk.txt"
        assert "fellow Americans" in result.read_text() and result.stat().st_uid == 10001
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        for target in reversed(mounted):
            subprocess.run(["umount", str(target)], check=False)
        subprocess.run(["podman", "image", "unmount", IMAGE], check=False, capture_output=True)
